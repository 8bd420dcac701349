// The stock phoenix client (Socket and Presence) against the rooms service: an instance
// made over HTTP with the admin token, two users in its lobby and chat, Presence lists
// kept by presence_state/presence_diff, a push acknowledged and heard by the other, a
// second instance's chat apart, a stopped instance's member rejoining on its own. Run by tests/integration/phoenix_client_test.cpp as
//   node --experimental-websocket rooms_test.mjs http://127.0.0.1:PORT ADMIN_TOKEN
// Prints one line per check passed; exits 0 when all passed, 1 with the failure.
import {isDeepStrictEqual} from "node:util";
import {Presence} from "phoenix";
import {connect as open, equal, fail, pass, reply} from "./lib.mjs";

const [base, token] = process.argv.slice(2);

const create = async (id) => {
  const r = await fetch(`${base}/api/instances`, {
    method: "POST",
    headers: {authorization: `Bearer ${token}`, "content-type": "application/json"},
    body: JSON.stringify({id, type: "chat", name: id, channels: [{name: "chat", type: "accumulative"}]}),
  });
  if (r.status !== 200) fail(`create ${id}: ${r.status} ${await r.text()}`);
};
await create("web-1");
await create("web-2");
pass("instances created over HTTP");

const ws = base.replace("http", "ws");
const connect = (instance, userId) => open(`${ws}/socket/${instance}`, {params: {userId}});
// Resolves once the channel's Presence list is exactly `users`.
const presenceIs = (presence, users) =>
  new Promise((resolve) => {
    const check = () => isDeepStrictEqual(presence.list((id) => id).sort(), users) && resolve();
    presence.onSync(check);
    check();
  });

const alice = await connect("web-1", "alice");
const bob = await connect("web-1", "bob");
const lobby = alice.channel("lobby");
const rooms = new Promise((resolve) => lobby.on("rooms", resolve));
const joined = await reply(lobby.join());
equal(joined, {instance: {id: "web-1", name: "web-1"}, user: "alice"}, "the lobby's join answers the instance");
equal((await rooms).rooms, [{name: "chat", type: "accumulative"}, {name: "lobby", type: "accumulative"}],
      "the lobby pushes its rooms");

const chatA = alice.channel("chat");
const presenceA = new Presence(chatA);
equal(await reply(chatA.join()), {type: "accumulative", state: []}, "a channel's join answers its type and state");
const chatB = bob.channel("chat");
await reply(chatB.join());
await presenceIs(presenceA, ["alice", "bob"]);
pass("presence_state and presence_diff keep the list: alice and bob");

const heard = new Promise((resolve) => chatB.on("msg", resolve));
const ack = await reply(chatA.push("push", {text: "hello"}));
equal(ack.applied.payload, {text: "hello"}, "a push is acknowledged with what it applied");
const msg = await heard;
equal([msg.user, msg.payload], ["alice", {text: "hello"}], "the other member hears the delta");

const carol = await connect("web-2", "carol");
const chatC = carol.channel("chat");
const presenceC = new Presence(chatC);
equal(await reply(chatC.join()), {type: "accumulative", state: []}, "another instance's chat is its own");
await presenceIs(presenceC, ["carol"]);
pass("and so is its presence");

await reply(chatB.leave());
await presenceIs(presenceA, ["alice"]);
pass("a leave reaches the others' presence");

// A stopped instance ends its channels with phx_error (protocol.md §7.3); the stock client
// rejoins by itself (every rejoinAfterMs, 20 ms here) and is back once it starts again.
const admin = async (path) => {
  const r = await fetch(`${base}/api/instances/${path}`, {method: "POST", headers: {authorization: `Bearer ${token}`}});
  if (r.status !== 200) fail(`${path}: ${r.status} ${await r.text()}`);
};
const dave = await open(`${ws}/socket/web-2`, {params: {userId: "dave"}, rejoinAfterMs: () => 20});
const chatD = dave.channel("chat");
await reply(chatD.join());
const errored = new Promise((resolve) => chatD.onError(resolve));
await admin("web-2/stop");
equal(await errored, {reason: "instance 'web-2' is stopped"}, "a stopped instance's members hear phx_error");
const back = new Promise((resolve) => chatD.on("presence_state", resolve));
await admin("web-2/start");
await back;
equal(chatD.state, "joined", "the stock client rejoins by itself once the instance starts");

for (const s of [alice, bob, carol, dave]) s.disconnect();
console.log("ALL PASSED");
process.exit(0);
