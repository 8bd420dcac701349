// Drives headless Chromium over the DevTools protocol through tests/web/rooms_pair.html:
// alice and bob on the demo's chat and canvas pages (examples/rooms-web). Checks that both
// join and see each other online, that a message alice types appears on bob's page, that
// cells alice paints appear on bob's canvas (and bob's on hers), then saves a screenshot.
// Run by tests/integration/rooms_web_test.cpp, which starts prismd, the static server and
// Chromium (and kills them), as
//   node --experimental-websocket rooms_web_test.mjs DEVTOOLS_WS_URL PAGE_URL SCREENSHOT.png
// Prints one line per check passed; exits 0 when all passed, 1 with the failure.
import {writeFileSync} from "node:fs";

const [devtools, pageUrl, screenshot] = process.argv.slice(2);
const fail = (why) => {
  console.log("FAIL " + why);
  process.exit(1);
};
const pass = (what) => console.log("ok " + what);
// Bounds a broken browser or server only; each step waits on the page's own state.
setTimeout(() => fail("not done within 20 s"), 20000).unref();

// One DevTools connection to the browser; commands go to the page's session (flatten mode).
const ws = new WebSocket(devtools);
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = () => reject(new Error("cannot connect to " + devtools));
}).catch((e) => fail(e.message));
let nextId = 1;
const pending = new Map();
ws.onmessage = ({data}) => {
  const m = JSON.parse(data);
  const call = pending.get(m.id);
  if (!call) return;
  pending.delete(m.id);
  m.error ? call.reject(new Error(`${call.method}: ${m.error.message}`)) : call.resolve(m.result);
};
const send = (method, params = {}, sessionId) =>
  new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, {resolve, reject, method});
    ws.send(JSON.stringify({id, method, params, sessionId}));
  });

const {targetId} = await send("Target.createTarget", {url: "about:blank"});
const {sessionId} = await send("Target.attachToTarget", {targetId, flatten: true});
const page = (method, params) => send(method, params, sessionId);
await page("Emulation.setDeviceMetricsOverride", {width: 1100, height: 804, deviceScaleFactor: 1, mobile: false});
await page("Page.enable");
await page("Page.navigate", {url: pageUrl});

// Helpers defined in the page for the expressions below: frame("chat-bob") is that
// iframe's document.
const helpers = `
  const frame = (id) => document.getElementById(id)?.contentDocument;
  const state = (id) => frame(id)?.body?.dataset.state;
  const cellOf = (id, r, c) => frame(id)?.querySelector('#grid [data-row="' + r + '"][data-column="' + c + '"]');
`;
const evaluate = async (expression) => {
  const {result, exceptionDetails} = await page("Runtime.evaluate", {
    expression: `(async () => { ${helpers} ${expression} })()`,
    awaitPromise: true,
    returnByValue: true,
  });
  if (exceptionDetails) fail(`${expression}: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
  return result.value;
};
// Resolves once `condition` (an expression) is true in the page, re-checked at each
// animation frame; a frame in the error state fails the test with its status line.
const until = (condition, what) =>
  evaluate(`
    return await new Promise((resolve) => {
      const check = () => {
        for (const f of document.querySelectorAll("iframe")) {
          if (f.contentDocument?.body?.dataset.state === "error") {
            return resolve(f.id + ": " + f.contentDocument.querySelector("#status").textContent);
          }
        }
        if (${condition}) return resolve("");
        requestAnimationFrame(check);
      };
      check();
    });`).then((error) => (error ? fail(`${what}: ${error}`) : pass(what)));

const frames = ["chat-alice", "chat-bob", "canvas-alice", "canvas-bob"];
await until(frames.map((id) => `state("${id}") === "joined"`).join(" && "), "alice and bob joined chat and canvas");
const online = (id) =>
  `[...(frame("${id}").querySelectorAll("#online li") ?? [])].map((li) => li.textContent).sort().join() === "alice,bob"`;
await until(`${online("chat-alice")} && ${online("chat-bob")}`, "each sees alice and bob online (Presence)");

const text = "hello from alice";
await evaluate(`
  const doc = frame("chat-alice");
  doc.querySelector("#text").value = ${JSON.stringify(text)};
  doc.querySelector("#send").requestSubmit();`);
await until(
  `[...frame("chat-bob").querySelectorAll("#messages li.live")].some(
     (li) => li.querySelector("b").textContent === "alice" && li.querySelector(".text").textContent === ${JSON.stringify(text)})`,
  "the message alice sent appears on bob's page");
await until(`frame("chat-alice").querySelector("#messages li.mine .text")?.textContent === ${JSON.stringify(text)}`,
            "and on hers, once acknowledged");

// Paints `cells` ([row, column]) in `colour` on `id`'s canvas as a pointer would.
const paint = (id, colour, cells) =>
  evaluate(`
    frame("${id}").querySelector('#palette button[title="${colour}"]').click();
    for (const [r, c] of ${JSON.stringify(cells)}) {
      cellOf("${id}", r, c).dispatchEvent(new PointerEvent("pointerdown", {bubbles: true, buttons: 1}));
    }`);
const painted = (id, colour, cells) =>
  cells.map(([r, c]) => `cellOf("${id}", ${r}, ${c})?.dataset.colour === "${colour}"`).join(" && ");
const stroke = [[2, 3], [2, 4], [2, 5], [2, 6], [3, 6], [4, 6], [5, 6], [6, 6]];
await paint("canvas-alice", "r", stroke);
await until(painted("canvas-bob", "r", stroke), "cells alice paints appear on bob's canvas");
const dot = [[8, 10], [8, 11], [9, 10], [9, 11]];
await paint("canvas-bob", "b", dot);
await until(painted("canvas-alice", "b", dot), "and bob's on hers");

const {data} = await page("Page.captureScreenshot", {format: "png"});
writeFileSync(screenshot, Buffer.from(data, "base64"));
pass("screenshot " + screenshot);
// No Browser.close: the browser may drop this connection before it answers, leaving the
// await unsettled and node exiting 13 with nothing printed; the test stops the browser.
console.log("ALL PASSED");
process.exit(0);
