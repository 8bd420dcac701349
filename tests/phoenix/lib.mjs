// What the phoenix client scripts share: one line per check, a bound on the whole run,
// and promises over the client's own callbacks (a join's or push's reply, an open socket).
import {isDeepStrictEqual} from "node:util";
import {Socket} from "phoenix";

export const fail = (why) => {
  console.log("FAIL " + why);
  process.exit(1);
};
export const pass = (what) => console.log("ok " + what);
export const equal = (a, b, what) =>
  isDeepStrictEqual(a, b) ? pass(what) : fail(`${what}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`);
// Bounds a broken server only; each step waits on the client's own events.
setTimeout(() => fail("no answer within 10 s"), 10000).unref();

// An open Socket at `url` with `options` (the node WebSocket as its transport).
export const connect = (url, options = {}) =>
  new Promise((resolve, reject) => {
    const socket = new Socket(url, {transport: WebSocket, ...options});
    socket.onOpen(() => resolve(socket));
    socket.onError((e) => reject(new Error("socket error " + (e && e.message))));
    socket.connect();
  });
// The push's "ok" response; rejects with its "error" response (or {reason: "timeout"}).
export const reply = (push) =>
  new Promise((resolve, reject) =>
    push.receive("ok", resolve).receive("error", (r) => reject(r)).receive("timeout", () => reject({reason: "timeout"})));
