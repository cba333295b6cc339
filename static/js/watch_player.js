// The player of /watch/title/<id>: a rendered film (no media file) with real controls, ad
// breaks played from the platform's VMAP and VAST tags through the vendored vast-client, and
// every playback action reported in batches to the engagement API.
//
// Ad break rule: each break plays once. Playing through a break's offset plays it; a break
// already played does not play again after seeking back before it; seeking forward past
// breaks that have not played plays the last of them (at its offset's moment, before the film
// goes on from the seek's target); breaks skipped that way stay unplayed. No seeking during an
// ad. A kids profile (config.ads false) never asks for ads.
//
// Time: `position` is in film seconds. A tick advances it by the wall time elapsed × the
// viewer's speed × config.timescale (1 normally; tests and demos run the film faster with
// ?timescale=N). Ads run at the same timescale, at the viewer's speed of 1.

const config = JSON.parse(document.getElementById("watch-config").textContent);
const script = document.querySelector("script[data-vast-player]");
const csrfToken = document.querySelector("[name=csrfmiddlewaretoken]").value;
const root = document.getElementById("player");
const $ = (selector) => root.querySelector(selector);

const FLUSH_MS = 2000;
const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];
const SCENE_SECONDS = 45;

function timecode(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

// --- Engagement: a viewing session and its events, batched ------------------------------------

class EngagementLog {
  constructor() {
    this.sessionId = null;
    this.eventsUrl = null;
    this.opening = null;
    this.openedAt = 0;
    this.sequence = 0;
    this.pending = []; // not yet sent
    this.inFlight = []; // sent, not yet acknowledged
    this.watchedSeconds = 0;
    this.ended = false;
    setInterval(() => this.flush(), FLUSH_MS);
  }

  open() {
    this.opening ??= fetch(config.sessionsUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify({ title_id: config.titleId, device: config.device }),
    })
      .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
      .then((session) => {
        this.openedAt = performance.now();
        this.sessionId = session.session_id;
        this.eventsUrl = `${config.sessionsUrl}/${session.session_id}/events`;
        root.dataset.session = session.session_id;
      });
    return this.opening;
  }

  record(kind, position, detail = {}) {
    if (this.ended) return;
    this.sequence += 1;
    this.pending.push({
      event_id: `e${this.sequence}`,
      kind,
      position_seconds: Math.min(config.duration, Math.max(0, Math.floor(position))),
      // Milliseconds since the session opened (0 before): the server's clock places them.
      offset_ms: this.openedAt ? Math.max(0, Math.round(performance.now() - this.openedAt)) : 0,
      detail,
    });
    if (kind === "complete" || kind === "abandon") this.ended = true;
  }

  batch(events) {
    return JSON.stringify({ events, watched_seconds: Math.floor(this.watchedSeconds) });
  }

  async flush() {
    if (!this.eventsUrl || this.inFlight.length || !this.pending.length) return;
    this.inFlight = this.pending.splice(0, 200);
    try {
      const response = await fetch(this.eventsUrl, {
        method: "POST",
        keepalive: true,
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: this.batch(this.inFlight),
      });
      if (response.status >= 500) throw new Error(String(response.status));
      this.inFlight = []; // stored, or refused for good (a 4xx says why in the server's log)
      root.dataset.flushed = String(Number(root.dataset.flushed || 0) + 1);
    } catch {
      this.pending.unshift(...this.inFlight); // sent again with the same ids: stored once
      this.inFlight = [];
    }
  }

  // The tab is closing: what was not acknowledged goes in a beacon, a form the CSRF check
  // accepts (a beacon cannot set the header).
  beacon() {
    if (!this.eventsUrl) return;
    const events = [...this.inFlight, ...this.pending];
    if (!events.length) return;
    const form = new FormData();
    form.append("csrfmiddlewaretoken", csrfToken);
    form.append("batch", this.batch(events.slice(0, 200)));
    navigator.sendBeacon(this.eventsUrl, form);
    this.pending = [];
  }
}

// --- Ads: the title's VMAP, each break's VAST pod, tracking through VASTTracker ----------------
// The road every web player takes (static/js/vast_player.js, over the vendored vast-client and
// vmap): the schedule from the VMAP, each break's pod from its VAST tag.

// VASTTracker decides when each tracking URL is due (impression, quartiles, complete, click);
// this subclass only changes how they leave: fetch with keepalive, so a quartile fired as the
// tab closes still arrives (the stock tracker sets an image's src).
function keepaliveTracker(VASTTracker) {
  return class KeepaliveTracker extends VASTTracker {
    trackURLs(templates, macros = {}) {
      const values = { CACHEBUSTING: String(Math.floor(Math.random() * 1e8)), ...macros };
      values.TIMESTAMP ??= new Date().toISOString();
      for (const template of templates || []) {
        const raw = typeof template === "string" ? template : template && template.url;
        if (!raw) continue;
        const url = raw.replace(/\[([A-Z_]+)\]|%%([A-Z_]+)%%/g, (match, bracket, percent) => {
          const value = values[bracket || percent];
          return value === undefined ? match : encodeURIComponent(value);
        });
        fetch(url, { keepalive: true, credentials: "omit" }).catch(() => {});
      }
    }
  };
}

function offsetSeconds(timeOffset) {
  if (timeOffset === "start") return 0;
  if (timeOffset === "end") return config.duration;
  if (/%$/.test(timeOffset)) return Math.round((parseFloat(timeOffset) / 100) * config.duration);
  const [h, m, s] = timeOffset.split(":").map(parseFloat);
  return Math.round(h * 3600 + m * 60 + s);
}

class AdSource {
  constructor() {
    this.breaks = new Map(); // offset seconds → the VMAP's ad break
    this.ready = config.ads ? this.load() : Promise.resolve();
  }

  async load() {
    this.road = await import(script.dataset.vastPlayer);
    this.client = this.road.newClient();
    const schedule = await this.road.fetchSchedule(config.vmapUrl);
    for (const adBreak of schedule.adBreaks) {
      this.breaks.set(offsetSeconds(adBreak.timeOffset), adBreak);
    }
    this.Tracker = keepaliveTracker(this.road.VASTTracker);
  }

  // The pod of the break at `offset`, in order: [{name, advertiser, duration, tracker}]; empty
  // when the VMAP has no such break or the ad server filled nothing.
  async pod(offset) {
    await this.ready;
    const adBreak = this.breaks.get(offset);
    if (!adBreak) return [];
    const slots = await this.road.fetchPod(this.client, adBreak);
    return slots.map(({ ad, creative }) => ({
      name: ad.title || "Ad",
      advertiser: (ad.advertiser && (ad.advertiser.value ?? ad.advertiser)) || "",
      duration: creative.duration || 15,
      tracker: new this.Tracker(this.client, ad, creative),
    }));
  }
}

// --- The film and the player ------------------------------------------------------------------

class Player {
  constructor() {
    this.position = config.start;
    this.playing = false;
    this.started = false;
    this.speed = 1;
    this.state = "idle"; // idle, playing, paused, ad, ended
    this.played = new Set(); // break offsets already played
    this.ad = null; // {pod, index, position, offset, resumeAt, paused}
    this.lastTick = 0;
    this.log = new EngagementLog();
    this.ads = new AdSource();
    this.ads.ready.catch((error) => {
      this.status(`Ads unavailable (${error.message || error}); the film plays without them.`);
      this.ads.breaks.clear();
    });
    this.canvas = $("[data-film]");
    this.context = this.canvas.getContext("2d");
    this.seekBar = $("[data-seek]");
    this.bind();
    this.markBreaks();
    this.render();
    requestAnimationFrame((now) => this.frame(now));
  }

  // Controls

  bind() {
    root.addEventListener("click", (event) => {
      const action = event.target.closest("[data-action]");
      if (action) this.act(action.dataset.action);
    });
    $("[data-ad-learn-more]").addEventListener("click", () => this.learnMore());
    $("[data-speed]").addEventListener("change", (event) => this.setSpeed(Number(event.target.value)));
    this.seekBar.addEventListener("input", () => {
      $("[data-time]").textContent = timecode(Number(this.seekBar.value));
    });
    this.seekBar.addEventListener("change", () => this.seek(Number(this.seekBar.value), "seek"));
    document.addEventListener("keydown", (event) => this.key(event));
    window.addEventListener("pagehide", () => this.leave());
  }

  act(action) {
    if (action === "toggle") return this.toggle();
    if (action === "back") return this.seek(this.position - 10, "seek");
    if (action === "forward") return this.seek(this.position + 10, "skip");
    if (action === "skip-intro") return this.seek(config.intro, "skip", "intro");
    if (action === "fullscreen") return this.fullscreen();
  }

  key(event) {
    if (event.target.closest("input, select, textarea") && event.key !== " ") return;
    const keys = {
      " ": "toggle", k: "toggle", ArrowLeft: "back", j: "back", ArrowRight: "forward",
      l: "forward", s: "skip-intro", f: "fullscreen",
    };
    if (keys[event.key]) {
      event.preventDefault();
      this.act(keys[event.key]);
    } else if (event.key === "<" || event.key === ">") {
      const index = SPEEDS.indexOf(this.speed) + (event.key === ">" ? 1 : -1);
      if (index >= 0 && index < SPEEDS.length) this.setSpeed(SPEEDS[index]);
    }
  }

  async toggle() {
    if (this.state === "ended") return;
    if (this.ad) return this.toggleAd();
    if (this.playing) {
      this.playing = false;
      this.setState("paused");
      this.log.record("pause", this.position);
      return;
    }
    const first = !this.started;
    this.started = true;
    this.playing = true;
    this.setState("playing");
    if (first) {
      // Recorded before the session opens: the film runs meanwhile, and a break it reaches
      // before the answer must come after the play that led to it.
      this.log.record("play", this.position);
      try {
        await this.log.open();
      } catch (error) {
        this.status(`Playback is not being recorded (${error}).`);
      }
      // A pre-roll, or (resuming further in) the last break before the start point.
      this.maybeBreak(this.unplayedIn(-1, this.position));
    } else {
      this.log.record("resume", this.position);
    }
  }

  setSpeed(speed) {
    if (speed === this.speed || !SPEEDS.includes(speed)) return;
    this.log.record("speed", this.position, { rate: speed, from: this.speed });
    this.speed = speed;
    $("[data-speed]").value = String(speed);
  }

  seek(target, kind, reason) {
    // No seeking during an ad (nor while its pod loads).
    if (this.ad || this.state === "loading-ad" || this.state === "ended") return;
    const from = this.position;
    const to = Math.min(config.duration - 1, Math.max(0, Math.round(target)));
    if (to === Math.floor(from)) return;
    this.position = to;
    const detail = { from: Math.floor(from), to };
    if (reason) detail.reason = reason;
    // Forward with "+10 s" or "skip intro" is a skip; any move on the bar is a seek.
    this.log.record(kind === "skip" && to > from ? "skip" : "seek", from, detail);
    if (this.started && to > from) this.maybeBreak(this.unplayedIn(from, to));
    this.render();
  }

  fullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else root.requestFullscreen?.();
  }

  leave() {
    if (this.started && this.state !== "ended") {
      this.log.record("abandon", this.position);
    }
    this.log.beacon();
  }

  // Breaks

  unplayedIn(from, to) {
    return config.breaks.filter((offset) => offset > from && offset <= to && !this.played.has(offset));
  }

  maybeBreak(offsets) {
    if (!config.ads || !offsets.length) return;
    const offset = Math.max(...offsets);
    this.played.add(offset);
    this.playBreak(offset);
  }

  async playBreak(offset) {
    const resumePlaying = this.playing;
    this.playing = false;
    this.setState("loading-ad");
    let pod = [];
    try {
      pod = await this.ads.pod(offset);
    } catch (error) {
      this.status(`No ads for this break (${error.message || error}).`);
    }
    if (!pod.length) {
      this.playing = resumePlaying;
      this.setState(resumePlaying ? "playing" : "paused");
      return;
    }
    this.ad = { pod, index: -1, position: 0, offset, resumePlaying, paused: false };
    // The pod as a whole, as the simulated audience reports it (the live score counts the
    // ads sat through from these); then each ad's start and end.
    const podSeconds = Math.round(pod.reduce((total, ad) => total + ad.duration, 0));
    this.log.record("ad_break", this.position, { break: offset, ads: pod.length, pod_seconds: podSeconds });
    this.nextAd();
  }

  nextAd() {
    const ad = this.ad;
    ad.index += 1;
    ad.position = 0;
    if (ad.index >= ad.pod.length) {
      this.ad = null;
      $("[data-ad-overlay]").hidden = true;
      this.playing = ad.resumePlaying;
      this.setState(this.playing ? "playing" : "paused");
      return;
    }
    const current = ad.pod[ad.index];
    current.tracker.on("clickthrough", (url) => window.open(url, "_blank", "noopener"));
    current.tracker.trackImpression();
    current.tracker.setProgress(0);
    this.log.record("ad_start", this.position, this.adDetail());
    $("[data-ad-creative]").textContent = current.name;
    $("[data-ad-advertiser]").textContent = current.advertiser;
    $("[data-ad-overlay]").hidden = false;
    this.setState("ad");
    this.updateAdLabel();
  }

  adDetail() {
    const current = this.ad.pod[this.ad.index];
    return {
      break: this.ad.offset,
      ad: this.ad.index + 1,
      ads: this.ad.pod.length,
      creative: current.name,
      advertiser: current.advertiser,
    };
  }

  toggleAd() {
    const current = this.ad.pod[this.ad.index];
    this.ad.paused = !this.ad.paused;
    current.tracker.setPaused(this.ad.paused);
    this.log.record(this.ad.paused ? "pause" : "resume", this.position, { ad: this.ad.index + 1 });
    this.setState(this.ad.paused ? "ad-paused" : "ad");
  }

  learnMore() {
    if (!this.ad) return;
    const current = this.ad.pod[this.ad.index];
    current.tracker.click(); // fires the click tracker, then "clickthrough" opens the landing
    root.dataset.clicks = String(Number(root.dataset.clicks || 0) + 1);
  }

  updateAdLabel() {
    const current = this.ad.pod[this.ad.index];
    const left = Math.ceil(current.duration - this.ad.position);
    $("[data-ad-label]").textContent = `Ad ${this.ad.index + 1} of ${this.ad.pod.length} · ${timecode(left)}`;
  }

  // The clock

  frame(now) {
    const elapsed = this.lastTick ? Math.min((now - this.lastTick) / 1000, 1) : 0;
    this.lastTick = now;
    if (this.ad && !this.ad.paused && this.ad.index >= 0) this.tickAd(elapsed * config.timescale);
    else if (this.playing) this.tickFilm(elapsed * this.speed * config.timescale);
    // Drawn again only when the film moved: paused, ended, before its first play or during an
    // ad, a frame costs nothing (it redrew the same picture up to 60 times a second).
    if (this.position !== this.drawnAt) this.render();
    requestAnimationFrame((next) => this.frame(next));
  }

  tickAd(seconds) {
    const current = this.ad.pod[this.ad.index];
    this.ad.position = Math.min(current.duration, this.ad.position + seconds);
    current.tracker.setProgress(this.ad.position);
    this.updateAdLabel();
    if (this.ad.position >= current.duration) {
      current.tracker.complete();
      this.log.record("ad_end", this.position, this.adDetail());
      this.nextAd();
    }
  }

  tickFilm(seconds) {
    const from = this.position;
    const to = Math.min(config.duration, from + seconds);
    const crossed = config.ads ? this.unplayedIn(from, to) : [];
    this.position = crossed.length ? Math.max(...crossed) : to; // the film stops at a break
    this.log.watchedSeconds += this.position - from;
    if (crossed.length) {
      this.maybeBreak(crossed);
      return;
    }
    if (this.position >= config.duration) {
      this.playing = false;
      this.setState("ended");
      this.log.record("complete", config.duration);
      this.log.flush();
      this.status("The end.");
    }
  }

  // Drawing

  setState(state) {
    this.state = state;
    root.dataset.state = state;
    const inAd = state.startsWith("ad") || state === "loading-ad";
    this.seekBar.disabled = inAd;
    const seekers = '[data-action="back"], [data-action="forward"], [data-action="skip-intro"]';
    root.querySelectorAll(seekers).forEach((button) => {
      button.disabled = inAd;
    });
    const showsPause = state === "playing" || state === "ad";
    $("[data-toggle]").textContent = showsPause ? "Pause" : "Play";
    $(".big-play").hidden = state !== "idle" && state !== "paused";
  }

  status(message) {
    $("[data-status]").textContent = message;
  }

  markBreaks() {
    const marks = $("[data-break-marks]");
    for (const offset of config.ads ? config.breaks : []) {
      const mark = document.createElement("span");
      mark.className = "break-mark";
      mark.style.left = `${(offset / config.duration) * 100}%`;
      mark.title = `Ad break at ${timecode(offset)}`;
      mark.dataset.offset = offset;
      marks.append(mark);
    }
  }

  render() {
    const position = this.position;
    this.drawnAt = position;
    if (document.activeElement !== this.seekBar) this.seekBar.value = String(Math.floor(position));
    $("[data-time]").textContent = timecode(position);
    $("[data-skip-intro]").hidden = position >= config.intro;
    root.dataset.position = String(Math.floor(position));
    this.drawFilm(position);
  }

  // A scene changes every SCENE_SECONDS: its colour, its horizon and its moving shapes follow
  // from the scene's number, so seeking back shows the same scene again.
  drawFilm(position) {
    const { width, height } = this.canvas;
    const g = this.context;
    const scene = Math.floor(position / SCENE_SECONDS);
    const within = (position % SCENE_SECONDS) / SCENE_SECONDS;
    const hue = (config.titleId * 47 + scene * 67) % 360;
    const sky = g.createLinearGradient(0, 0, 0, height);
    sky.addColorStop(0, `hsl(${hue}, 55%, 22%)`);
    sky.addColorStop(1, `hsl(${(hue + 40) % 360}, 60%, 45%)`);
    g.fillStyle = sky;
    g.fillRect(0, 0, width, height);
    g.fillStyle = `hsla(${(hue + 180) % 360}, 70%, 65%, 0.85)`;
    for (let i = 0; i < 5; i += 1) {
      const x = ((i * 0.23 + within * (0.3 + i * 0.05)) % 1) * width;
      const y = height * (0.25 + 0.1 * ((scene + i) % 4));
      g.beginPath();
      g.arc(x, y, 30 + ((scene * 13 + i * 17) % 50), 0, Math.PI * 2);
      g.fill();
    }
    g.fillStyle = `hsl(${hue}, 40%, 12%)`;
    g.fillRect(0, height * (0.68 + 0.04 * (scene % 3)), width, height);
    g.fillStyle = "rgba(255,255,255,0.92)";
    g.textAlign = "center";
    g.font = "600 64px system-ui, sans-serif";
    g.fillText(config.name, width / 2, height * 0.45, width * 0.9);
    g.font = "500 40px ui-monospace, monospace";
    g.fillText(`${timecode(position)} · scene ${scene + 1}`, width / 2, height * 0.58);
  }
}

window.watchPlayer = new Player();
