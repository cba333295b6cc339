// Interlude's ad tags played by Dailymotion's VAST client (untouched, vendored): the road every
// web player takes. Fetch a title's VMAP, then each break's VAST 4.2 pod, and drive a
// VASTTracker per ad, so every event reaches the platform's signed tracking links.
//
//   import { newClient, fetchSchedule, fetchPod, trackPlayback } from "/static/js/vast_player.js";
//   const client = newClient();
//   const schedule = await fetchSchedule("/vmap/1.0?player=interlude-web&viewer=...&title=...&device=web");
//   for (const adBreak of schedule.adBreaks) {            // adBreak.timeOffset: "start", "00:10:00.000"
//     for (const slot of await fetchPod(client, adBreak)) { // slot: {ad, creative}, in pod order
//       const tracker = new VASTTracker(client, slot.ad, slot.creative);
//       // a real player: tracker.trackImpression() when the ad's first frame shows,
//       // tracker.setProgress(video.currentTime) on timeupdate, tracker.complete() on ended,
//       // tracker.click() on a click (then open the URL of its "clickthrough" event).
//     }
//   }
import { VASTClient, VASTTracker } from "../vendor/vast-client-6.4.5.min.js";
import VMAP from "../vendor/vmap-3.3.3.min.js";

export { VASTClient, VASTTracker, VMAP };

export function newClient() {
  const client = new VASTClient();
  // The VMAP's ad tags end in cb=[CACHEBUSTING]: the client fills macros in trackers only.
  client.addURLTemplateFilter((url) =>
    url.replace("[CACHEBUSTING]", String(Math.floor(Math.random() * 1e8)).padStart(8, "0")),
  );
  return client;
}

export async function fetchSchedule(vmapUrl) {
  const response = await fetch(vmapUrl, { credentials: "omit" });
  if (!response.ok) {
    throw new Error(`VMAP: HTTP ${response.status}: ${await response.text()}`);
  }
  const xml = new DOMParser().parseFromString(await response.text(), "text/xml");
  return new VMAP(xml);
}

export async function fetchPod(client, adBreak) {
  // An empty pod resolves with no ads; the client reports it to the VAST's <Error> (303).
  const vast = await client.get(adBreak.adSource.adTagURI.uri);
  return vast.ads
    .map((ad) => ({ ad, creative: ad.creatives.find((creative) => creative.type === "linear") }))
    .filter((slot) => slot.creative);
}

// The longest the quartiles wait for their impression's answer.
const IMPRESSION_WAIT_MS = 5000;

export const PLAYBACK_EVENTS = [
  "creativeView", // with the impression
  "start",
  "firstQuartile",
  "midpoint",
  "thirdQuartile",
  "complete",
  "clickthrough",
];

// Resolves once this page has the answer to a request whose URL starts with one of `prefixes`
// (its resource timing entry, the only trace of an image's request that answers 204), or
// after `ms` at the latest. Observe before the request leaves.
function answered(prefixes, ms) {
  let observer;
  let timer;
  const done = new Promise((resolve) => {
    observer = new PerformanceObserver((list) => {
      if (list.getEntries().some((entry) => prefixes.some((prefix) => entry.name.startsWith(prefix)))) {
        resolve();
      }
    });
    observer.observe({ type: "resource" });
    timer = setTimeout(resolve, ms);
  });
  return done.finally(() => {
    observer.disconnect();
    clearTimeout(timer);
  });
}

// An ad watched to the end and clicked, without a <video>, a step apart (a real ad's events
// come seconds apart): what the try-it page and the browser test run. A player calls the same
// methods from its video's events instead.
export async function trackPlayback(client, slot, onEvent = () => {}, stepMs = 50) {
  const tracker = new VASTTracker(client, slot.ad, slot.creative);
  for (const name of PLAYBACK_EVENTS) {
    tracker.on(name, (data) => onEvent(name, data));
  }
  const pause = (ms = stepMs) => new Promise((resolve) => setTimeout(resolve, ms));
  const duration = slot.creative.duration;
  // The server refuses a quartile whose impression it has not stored yet (`no_impression`),
  // and a real ad reaches its first quartile seconds after its impression: the quartiles wait
  // for the impression's answer (on a loaded machine it took longer than a second).
  const impressions = (slot.ad.impressionURLTemplates || [])
    .map((template) => (typeof template === "string" ? template : template.url))
    .filter(Boolean)
    .map((url) => url.split("[")[0]);
  const impressionAnswered = answered(impressions, IMPRESSION_WAIT_MS);
  tracker.trackImpression();
  await impressionAnswered;
  await pause();
  for (const share of [0.01, 0.26, 0.51, 0.76]) {
    tracker.setProgress(duration * share);
    await pause();
  }
  tracker.complete();
  await pause();
  tracker.click(); // fires ClickTracking; "clickthrough" carries the landing page's URL
  return tracker;
}
