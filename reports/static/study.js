// The facebench 2AFC rating page: one pair at a time, answered with F / J, the arrow keys or the buttons; U or
// Backspace takes the last answer back. Answers are kept in the browser's local storage (per study and rater, so
// a closed tab resumes) and downloaded as a CSV with the header the importer reads. Nothing is fetched or sent;
// text is set with textContent, never innerHTML; images come from the page's own JSON block as data URIs.
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("study-data").textContent);
  const pairs = data.pairs;
  const raterPattern = new RegExp("^(?:" + data.rater_pattern + ")$");
  const $ = function (id) { return document.getElementById(id); };
  const state = { rater: null, answers: [], ready: false, shownAt: 0 };

  function storageKey() { return "facebench-2afc:" + data.study + ":" + state.rater; }

  function persist() {
    try { window.localStorage.setItem(storageKey(), JSON.stringify(state.answers)); } catch (e) { /* private mode */ }
  }

  // Answers saved earlier for this study and rater, if they are a prefix of the page's pairs (else none).
  function restore() {
    let saved = [];
    try { saved = JSON.parse(window.localStorage.getItem(storageKey()) || "[]"); } catch (e) { return []; }
    if (!Array.isArray(saved) || saved.length > pairs.length) return [];
    const ok = saved.every(function (a, i) {
      return a && a.pair === pairs[i].pair && (a.chosen === "left" || a.chosen === "right") &&
        Number.isInteger(a.response_ms) && a.response_ms >= 0 && typeof a.answered_at === "string";
    });
    return ok ? saved : [];
  }

  function setState(name) { document.body.dataset.state = name; }

  function show() {
    const i = state.answers.length;
    $("intro").hidden = true;
    if (i >= pairs.length) {
      $("trial").hidden = true;
      $("done").hidden = false;
      state.ready = false;
      setState("done");
      return;
    }
    $("done").hidden = true;
    $("trial").hidden = false;
    state.ready = false;
    setState("loading");
    $("progress-text").textContent = "Pair " + (i + 1) + " of " + pairs.length;
    $("progress").value = i;
    $("undo").disabled = i === 0;
    const left = $("left"), right = $("right");
    left.src = pairs[i].left;
    right.src = pairs[i].right;
    // The clock starts when both images are decoded and on screen, not while they load.
    Promise.all([left.decode(), right.decode()]).catch(function () { return null; }).then(function () {
      if (state.answers.length !== i) return;  // answered or taken back meanwhile
      state.ready = true;
      state.shownAt = performance.now();
      document.body.dataset.index = String(i);
      setState("ready");
    });
  }

  function choose(side) {
    if (!state.ready) return;
    state.ready = false;
    state.answers.push({
      pair: pairs[state.answers.length].pair,
      chosen: side,
      response_ms: Math.max(0, Math.round(performance.now() - state.shownAt)),
      answered_at: new Date().toISOString(),
    });
    persist();
    show();
  }

  function undo() {
    if (!state.answers.length) return;
    state.answers.pop();
    persist();
    show();
  }

  function csv() {
    const lines = [data.header];
    state.answers.forEach(function (a) {
      lines.push([data.study, state.rater, a.pair, a.chosen, a.response_ms, a.answered_at].join(","));
    });
    return lines.join("\n") + "\n";
  }

  function download() {
    const url = URL.createObjectURL(new Blob([csv()], { type: "text/csv" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = "ratings-" + data.study + "-" + state.rater.replace(/[^A-Za-z0-9_.-]/g, "_") + ".csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  function start() {
    const rater = $("rater").value.trim();
    if (!raterPattern.test(rater)) {
      $("rater-problem").textContent = "Please enter a rater id of 1 to 64 letters, digits, spaces or _.@- " +
        "that starts with a letter or digit.";
      $("rater-problem").hidden = false;
      return;
    }
    $("rater-problem").hidden = true;
    state.rater = rater;
    state.answers = restore();
    show();
  }

  $("start").addEventListener("click", start);
  $("rater").addEventListener("keydown", function (event) {
    if (event.key === "Enter") start();
  });
  $("choose-left").addEventListener("click", function () { choose("left"); });
  $("choose-right").addEventListener("click", function () { choose("right"); });
  $("undo").addEventListener("click", undo);
  $("back").addEventListener("click", undo);
  $("save").addEventListener("click", download);
  $("download").addEventListener("click", download);
  document.addEventListener("keydown", function (event) {
    if (state.rater === null || event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "f" || key === "ArrowLeft") choose("left");
    else if (key === "j" || key === "ArrowRight") choose("right");
    else if (key === "u" || key === "Backspace") undo();
    else return;
    event.preventDefault();
  });
  setState("intro");
}());
