// A creative's preview: the poster (name, duration, category) covers the <video> until its
// media loads; if the media cannot load (offline, a demo URL), the poster stays and says so.
// Once the metadata is in, the media's real length is shown beside the declared duration.
(function () {
  "use strict";

  function enhance(frame) {
    var video = frame.querySelector("video");
    var poster = frame.querySelector("[data-poster]");
    var state = frame.querySelector("[data-poster-state]");
    var length = document.querySelector("[data-media-duration]");

    function failed() {
      poster.hidden = false;
      state.textContent = "The video could not load: a placeholder with the creative's facts.";
    }
    video.addEventListener("loadedmetadata", function () {
      poster.hidden = true;
      if (length && isFinite(video.duration)) {
        length.textContent = "(the media runs " + video.duration.toFixed(1) + " s)";
      }
    });
    video.addEventListener("error", failed);
    // An error before this script ran leaves its trace on the element.
    if (video.error || video.networkState === HTMLMediaElement.NETWORK_NO_SOURCE) failed();
    else if (video.readyState >= HTMLMediaElement.HAVE_METADATA) poster.hidden = true;
  }

  function init() {
    document.querySelectorAll("[data-creative-preview]").forEach(enhance);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
