// /vast/try/: plays a title's ad breaks with static/js/vast_player.js, the road a web player
// takes, and lists every tracker fired.
import { newClient, fetchSchedule, fetchPod, trackPlayback } from "./vast_player.js";

const form = document.getElementById("tag-form");
const status = document.getElementById("status");
const rows = document.querySelector("#events tbody");
const replayButton = document.getElementById("replay");
let played = null; // [{adBreak, slot}] of the last run, for the replay

function row(adBreak, slot, round) {
  const tr = rows.insertRow();
  const ad = slot.ad;
  for (const text of [`${adBreak.breakId} (${adBreak.timeOffset})${round > 1 ? ", again" : ""}`,
                      `${ad.sequence}. ${ad.title} (${ad.adServingId})`, ad.advertiser?.value ?? "", ""]) {
    tr.insertCell().textContent = text;
  }
  return tr.cells[3];
}

async function run(client, plan, round) {
  let fired = 0;
  for (const { adBreak, slot } of plan) {
    const cell = row(adBreak, slot, round);
    await trackPlayback(client, slot, (name) => {
      fired += 1;
      cell.textContent += (cell.textContent ? ", " : "") + name;
    });
  }
  return fired;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = new URLSearchParams(new FormData(form));
  const vmapUrl = `/vmap/1.0?${query}`;
  document.getElementById("vmap-url").textContent = new URL(vmapUrl, location.href).href;
  rows.replaceChildren();
  status.textContent = "Playing…";
  try {
    const client = newClient();
    const schedule = await fetchSchedule(vmapUrl);
    const plan = [];
    for (const adBreak of schedule.adBreaks) {
      for (const slot of await fetchPod(client, adBreak)) {
        plan.push({ adBreak, slot });
      }
    }
    const fired = await run(client, plan, 1);
    played = { client, plan };
    replayButton.disabled = plan.length === 0;
    status.textContent = `Played: ${schedule.adBreaks.length} breaks, ${plan.length} ads, ${fired} events.`;
  } catch (error) {
    status.textContent = `Failed: ${error.message}`;
  }
});

replayButton.addEventListener("click", async () => {
  replayButton.disabled = true;
  status.textContent = "Playing again…";
  const fired = await run(played.client, played.plan, 2);
  status.textContent = `Played again: ${played.plan.length} ads, ${fired} events.`;
});
