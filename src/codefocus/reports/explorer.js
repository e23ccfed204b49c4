// The codefocus explorer: reads its numbers from the JSON beside it, writes text only.
(function(){
if(window.codefocusExplorer)return;
window.codefocusExplorer=function(id){
var root=document.getElementById(id);if(!root||root.dataset.ready)return;root.dataset.ready="1";
var data=JSON.parse(root.querySelector("script.cfx-data").textContent);
var words=[],stmts=[];
root.querySelectorAll(".w").forEach(function(w){words[+w.dataset.w]=w;});
root.querySelectorAll(".s").forEach(function(s){stmts[+s.dataset.s]=s;});
var select=root.querySelector("select"),status=root.querySelector(".cfx-status");
var labels=root.querySelector("input.cfx-labels");
var pinnedStmt=null,pinnedWord=null;
function method(){return data.methods[select.value];}
function clear(){
 words.forEach(function(w){w.classList.remove("on");w.style.background="";w.style.color="";
  w.removeAttribute("data-score");w.title=w.dataset.label||"";});
 stmts.forEach(function(s){s.classList.remove("on");});}
// a contrastive attribution diverges: blue toward the generated code, red toward the contrast
function shade(w,v,t){var sc=data.diverging&&v<0?data.negative:data.scale;
 var b=Math.min(sc.length-1,Math.floor(t*sc.length));
 w.style.background=sc[b];w.style.color=b>=sc.length-2?"#fff":"";}
function paint(top,scores){
 var m=top.length?scores[top[0]]:0,lo=top.length?scores[top[top.length-1]]:0;
 if(data.diverging){m=top.length?Math.abs(scores[top[0]]):0;lo=0;}
 top.forEach(function(i){var v=scores[i],t=m>lo?((data.diverging?Math.abs(v):v)-lo)/(m-lo):1;
  var w=words[i];if(!w)return;w.classList.add("on");shade(w,v,t);w.dataset.score=String(v);
  w.title=select.value+": "+v.toPrecision(4)+(data.diverging?(v>0?" (toward the generated code)":
   " (toward the contrast)"):"")+(w.dataset.label?" \u2014 "+w.dataset.label:"");});}
function showWords(){
 clear();var m=method();
 if(!m.top.length){status.textContent=select.value+": no attribution (all scores equal)";return;}
 paint(m.top,m.scores);
 status.textContent=select.value+": the top "+m.top.length+" words of the whole generation"+
  (data.diverging?" by size (blue: toward the generated code, red: toward the contrast)":"");}
function showStatement(j){
 var m=method();clear();stmts[j].classList.add("on");
 if(!m.rows){showWords();stmts[j].classList.add("on");
  status.textContent+=" ("+select.value+" scores words only, not statements)";return;}
 var top=m.rows[j].top;
 if(!top.length){status.textContent="statement "+(j+1)+": no attribution (all scores equal)";return;}
 paint(top,m.rows[j].scores);
 status.textContent="statement "+(j+1)+": its top "+top.length+" words by "+select.value;}
function showWord(i){
 var m=method();clear();var hits=0;
 if(m.rows){m.rows.forEach(function(r,j){if(r.top.indexOf(i)>=0){if(stmts[j])stmts[j].classList.add("on");hits++;}});}
 words[i].classList.add("on");var v=m.scores[i];shade(words[i],v,1);words[i].dataset.score=String(v);
 status.textContent="\u201c"+words[i].textContent+"\u201d ("+select.value+" "+v.toPrecision(4)+"): "+
  (m.rows?"in the top "+data.k+" of "+hits+" of "+m.rows.length+" statements":"this method has no per-statement scores");}
function rest(){if(pinnedStmt!==null)showStatement(pinnedStmt);else if(pinnedWord!==null)showWord(pinnedWord);else showWords();}
function unpin(){pinnedStmt=null;pinnedWord=null;
 root.querySelectorAll(".pin").forEach(function(e){e.classList.remove("pin");});}
stmts.forEach(function(s,j){
 s.addEventListener("mouseenter",function(){showStatement(j);});
 s.addEventListener("focus",function(){showStatement(j);});
 s.addEventListener("mouseleave",rest);s.addEventListener("blur",rest);
 function pin(){var was=pinnedStmt===j;unpin();if(!was){pinnedStmt=j;s.classList.add("pin");}rest();}
 s.addEventListener("click",pin);
 s.addEventListener("keydown",function(e){if(e.key==="Enter"||e.key===" "){e.preventDefault();pin();}});});
words.forEach(function(w,i){
 function pin(){var was=pinnedWord===i;unpin();if(!was){pinnedWord=i;w.classList.add("pin");}rest();}
 w.addEventListener("click",pin);
 w.addEventListener("keydown",function(e){if(e.key==="Enter"||e.key===" "){e.preventDefault();pin();}});});
root.addEventListener("keydown",function(e){if(e.key==="Escape"){unpin();rest();}});
select.addEventListener("change",rest);
if(labels)labels.addEventListener("change",function(){root.classList.toggle("lb",labels.checked);});
rest();};
})();
