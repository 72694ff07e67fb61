(function(){
  var root=document.documentElement; root.classList.add('js');
  var panels=[].slice.call(document.querySelectorAll('.model-panel'));
  function show(id){
    if(!panels.length) return;
    var found=panels.some(function(p){return p.id===id;});
    if(!found) id=panels[0].id;
    panels.forEach(function(p){p.classList.toggle('active',p.id===id);});
    document.querySelectorAll('a.tab').forEach(function(a){
      a.classList.toggle('active',a.dataset.model===id);});
    fit();
  }
  window.addEventListener('resize',function(){fit();});
  // A table wider than its column goes into a horizontal scroll box (first column sticky, CSS):
  // the page itself never gets wider than the window. Hidden panels are measured when shown.
  function fit(){
    document.querySelectorAll('main table').forEach(function(t){
      if(!t.offsetParent||t.closest('.scroll-x,.scroll')) return;
      var box=t.parentElement;
      if(t.offsetWidth>box.clientWidth+1){
        var d=document.createElement('div'); d.className='scroll-x';
        box.insertBefore(d,t); d.appendChild(t);}
    });
  }
  function fromHash(){
    var el=location.hash&&document.getElementById(location.hash.slice(1));
    var p=el&&el.closest('.model-panel'); return p?p.id:'';}
  window.addEventListener('hashchange',function(){var id=fromHash(); if(id) show(id);});
  show(fromHash());
  document.querySelectorAll('.examples').forEach(function(box){
    box.querySelectorAll('[data-filter]').forEach(function(b){b.addEventListener('click',function(){
      box.querySelectorAll('[data-filter]').forEach(function(x){x.classList.toggle('on',x===b);});
      box.querySelectorAll('.example').forEach(function(ex){
        var f=b.dataset.filter;
        ex.classList.toggle('hide',f!=='all'&&ex.dataset.category!==f);});
    });});
  });
  document.querySelectorAll('.example').forEach(function(ex){
    var doc=ex.querySelector('.doc');
    ['view','removed'].forEach(function(k){
      ex.querySelectorAll('[data-'+k+']:not(.doc)').forEach(function(b){
        b.addEventListener('click',function(){
          ex.querySelectorAll('[data-'+k+']:not(.doc)').forEach(function(x){
            x.classList.toggle('on',x===b);});
          doc.dataset[k]=b.dataset[k];});});});
  });
  function cell(tr, content, title){
    var td=tr.insertCell(); if(content.nodeType){td.appendChild(content);} else {
      td.textContent=content;} if(title!==undefined){td.title=title;} return td;}
  // Payload: w = weights, s = one list per score view, r = one rank list per ranking (1-based),
  // all numbers pre-formatted to significant digits by the report (no "0.0000" for tiny weights).
  function fillItems(body){
    if(body.dataset.done) return; body.dataset.done='1';
    var d=JSON.parse(body.dataset.rows), steps=JSON.parse(body.dataset.steps);
    var colors=JSON.parse(body.dataset.colors);
    var items=body.closest('.example').querySelectorAll('.doc .it');
    for(var i=0;i<items.length;i++){
      var tr=body.insertRow(), st=items[i].style;
      cell(tr, String(i+1));
      var it=document.createElement('span'); it.className='it'; it.textContent=items[i].textContent;
      it.style.background=st.getPropertyValue('--v0'); cell(tr, it);
      cell(tr, d.w[i], d.w[i]);
      for(var k=0;k<d.s.length;k++){
        var s=document.createElement('span'); s.className='cell'; s.textContent=d.s[k][i];
        s.style.background=st.getPropertyValue('--v'+(k+1)); cell(tr, s, d.s[k][i]);}
      for(var r=0;r<steps.length;r++){
        var rank=d.r[r][i], gone=rank!==null&&steps[r]!==null&&rank<=steps[r];
        var c=document.createElement('span'); c.textContent=rank===null?'—':String(rank);
        if(gone){c.className='gone'; c.style.setProperty('--c', colors[r]);} cell(tr, c);}
    }
  }
  document.querySelectorAll('.example details').forEach(function(det){
    det.addEventListener('toggle',function(){
      if(det.open) det.querySelectorAll('tbody[data-rows]').forEach(fillItems);});
    if(det.open) det.querySelectorAll('tbody[data-rows]').forEach(fillItems);
  });
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
      var body=t.tBodies[0], rows=[].slice.call(body.rows), dir=th.dataset.dir==='d'?1:-1;
      th.dataset.dir=dir===1?'a':'d';
      function key(r){var c=r.cells[i];
        var v=parseFloat(c.title||c.textContent); return isNaN(v)?-Infinity:v;}
      rows.sort(function(a,b){return dir*(key(a)-key(b));});
      rows.forEach(function(r){body.appendChild(r);});
    });});
  });
})();
