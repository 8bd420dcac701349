// The chat page: the instance's accumulative channel `chat` (its history on join, then
// each `msg`), a box that pushes {"text"}, and the channel's Presence list.
import {Presence} from "phoenix";
import {connect, joined, params, setStatus} from "./rooms.js";

const messages = document.querySelector("#messages");
const shown = new Set();  // message ids: the sender hears its own message in the push's ack

// m: {"id", "user", "ts" (Unix ms), "payload": {"text"}}; `how` is "history" or "live".
function show(m, how) {
  if (shown.has(m.id)) return;
  shown.add(m.id);
  const item = document.createElement("li");
  item.className = how + (m.user === params.user ? " mine" : "");
  item.dataset.id = m.id;
  const time = document.createElement("time");
  time.textContent = new Date(m.ts).toLocaleTimeString();  // ts: Unix milliseconds
  const user = document.createElement("b");
  user.textContent = m.user;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.payload && typeof m.payload.text === "string" ? m.payload.text : JSON.stringify(m.payload);
  item.append(time, user, text);
  messages.append(item);
  item.scrollIntoView({block: "end"});
}

function showOnline(presence) {
  const list = document.querySelector("#online");
  list.replaceChildren(
    ...presence.list((user, {metas}) => {
      const item = document.createElement("li");
      item.textContent = metas.length > 1 ? `${user} (${metas.length} tabs)` : user;
      if (user === params.user) item.className = "me";
      return item;
    }));
}

try {
  const socket = await connect();
  const chat = socket.channel("chat");
  const presence = new Presence(chat);
  presence.onSync(() => showOnline(presence));
  chat.on("msg", (m) => show(m, "live"));
  const {state} = await joined(chat);
  for (const m of state) show(m, "history");
  setStatus("joined", `${params.user} in ${params.instance}`);

  const form = document.querySelector("#send");
  const input = document.querySelector("#text");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    chat
      .push("push", {text: input.value})
      .receive("ok", ({applied}) => show(applied, "live"))
      .receive("error", ({reason}) => setStatus("joined", `not sent: ${reason}`));
    input.value = "";
  });
} catch (e) {
  setStatus("error", e.message);
}
