// Saves each rating and open answer the moment it is given (the form's buttons save them too).
(function () {
  function saved(form, ok) {
    var note = form.querySelector(".saved");
    if (note) note.textContent = ok ? "saved" : "not saved yet: use the button below";
  }
  function post(url, body, form) {
    fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify(body), credentials: "same-origin"})
      .then(function (r) { saved(form, r.ok); })
      .catch(function () { saved(form, false); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var base = location.pathname.replace(/\/(task\/\d+|final)$/, "");
    var ratings = document.querySelector("form.ratings");
    if (ratings) {
      ratings.addEventListener("change", function (e) {
        var input = e.target;
        if (input.type !== "radio") return;
        post(base + "/rate", {task: Number(ratings.dataset.task),
                              position: Number(input.dataset.position),
                              question: input.dataset.question,
                              value: Number(input.value)}, ratings);
      });
    }
    var answers = document.querySelector("form.answers");
    if (answers) {
      answers.querySelectorAll("textarea").forEach(function (area) {
        area.addEventListener("change", function () {
          post(base + "/answer", {question: area.dataset.question, text: area.value}, answers);
        });
      });
    }
  });
})();
