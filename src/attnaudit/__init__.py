"""attnaudit: is my text classifier's attention a faithful account of what the model used?"""

__version__ = "0.1.0"
