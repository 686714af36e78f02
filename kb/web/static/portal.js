// Progressive enhancement only: the pages work without this file.
// On an article, the optional comment box is shown only after "No" is pressed.
(function () {
  "use strict";
  var box = document.querySelector("[data-fb-comment]");
  var no = document.querySelector("[data-fb-no]");
  if (!box || !no) return;
  box.hidden = true;
  no.setAttribute("aria-expanded", "false");
  no.setAttribute("aria-controls", "fb-comment-box");
  no.addEventListener("click", function (event) {
    if (!box.hidden) return; // second press sends the form with the comment
    event.preventDefault();
    box.hidden = false;
    no.setAttribute("aria-expanded", "true");
    no.textContent = no.getAttribute("data-send") || no.textContent;
    var area = box.querySelector("textarea");
    if (area) area.focus();
  });
})();
