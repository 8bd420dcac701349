// The stock phoenix client (npm "phoenix", pinned by package-lock.json) against prismd's
// WebSocket gateway and the default plugin's echo:* channels: join, push with an ok and
// an error reply, a refused join, a broadcast to a second socket, heartbeats, a timer's
// pushes, params and authToken, a malformed frame, an idle close, leave.
// Run by tests/integration/phoenix_client_test.cpp as
//   node --experimental-websocket phoenix_client_test.mjs ws://127.0.0.1:PORT/socket
// Prints one line per check passed; exits 0 when all passed, 1 with the failure.
import {connect as open, equal, fail, pass, reply} from "./lib.mjs";

const url = process.argv[2];
// Heartbeats every 100 ms, so the test sees the server answer some.
const connect = (more = {}) => open(url, {heartbeatIntervalMs: 100, ...more});

const a = await connect();
const b = await connect();
pass("two sockets open");

const lobby = a.channel("echo:lobby", {});
equal(await reply(lobby.join()), {topic: "echo:lobby"}, "join answers the plugin's response");
equal(await reply(lobby.push("echo", {hi: 1})), {hi: 1}, "push gets the plugin's ok reply");
try {
  await reply(lobby.push("dance", {}));
  fail("an unknown event was accepted");
} catch (r) {
  equal(r, {reason: "no event dance (echo, shout, tick, socket)"}, "push gets the plugin's error reply");
}
try {
  await reply(a.channel("nosuch:1", {}).join());
  fail("an unserved topic was joined");
} catch (r) {
  equal(r, {reason: "unmatched topic"}, "a topic nobody serves is refused");
}

const lobbyB = b.channel("echo:lobby", {});
await reply(lobbyB.join());
const heard = new Promise((resolve) => lobbyB.on("shout", resolve));
await reply(lobby.push("shout", {all: true}));
equal(await heard, {all: true}, "a shout reaches the other socket");

const beat = new Promise((resolve) =>
  a.onMessage((m) => m.topic === "phoenix" && m.event === "phx_reply" && resolve(m.payload)));
equal(await beat, {status: "ok", response: {}}, "heartbeats are answered");

// A server push without a request: the default plugin's timer ticks on the channel.
const ticks = [];
const ticked = new Promise((resolve) =>
  lobby.on("tick", ({n}) => ticks.push(n) === 3 && resolve()));
equal(await reply(lobby.push("tick", {count: 3, every_ms: 5})), {count: 3}, "tick is accepted");
await ticked;
equal(ticks, [1, 2, 3], "a timer's pushes reach the channel in order");

// The client's params and authToken (the base64url.bearer.phx sub-protocol) reach the
// plugin with every channel message.
const c = await connect({params: {user: "ada"}, authToken: "s3cret token"});
const mine = c.channel("echo:me", {});
await reply(mine.join());
equal(await reply(mine.push("socket", {})), {params: {vsn: "2.0.0", user: "ada"}, token: "s3cret token"},
      "params and the bearer token reach the plugin");
c.disconnect();

// A frame that is not Phoenix JSON closes that socket with 1007 and the reason.
const d = await connect();
const closed = new Promise((resolve) => d.onClose((e) => resolve([e.code, e.reason])));
d.conn.send("garbage");
equal(await closed, [1007, "malformed frame: not JSON"], "a malformed frame closes the socket");
d.disconnect();

// A socket that stays silent (its heartbeat every minute) is closed after the server's
// ws.idle_timeout_ms (1 s here) while the others, heartbeating, stay open.
const quiet = await connect({heartbeatIntervalMs: 60000});
const idle = new Promise((resolve) => quiet.onClose(() => resolve(Date.now())));
const opened = Date.now();
const idleAt = await idle;
quiet.disconnect();
pass(`a silent socket is closed after ${idleAt - opened} ms`);
equal(await reply(lobby.push("echo", {still: "here"})), {still: "here"}, "the heartbeating socket stays open");

await reply(lobby.leave());
pass("leave is answered");
a.disconnect();
b.disconnect();
console.log("ALL PASSED");
process.exit(0);
