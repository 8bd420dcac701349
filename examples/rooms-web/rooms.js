// What both demo pages share: the URL's parameters, the socket of one user on one
// instance (docs/rooms.md, "Joining from a browser") and the status line.
import {Socket} from "phoenix";

const query = new URLSearchParams(location.search);

// ?server=ws://127.0.0.1:4000&instance=demo&user=alice; the defaults fit `make run`.
export const params = {
  server: query.get("server") || "ws://127.0.0.1:4000",
  instance: query.get("instance") || "demo",
  user: query.get("user") || "guest-" + Math.floor(Math.random() * 10000),
};

// Shows where the page stands; body[data-state] is what the browser test waits on.
export function setStatus(state, text) {
  document.body.dataset.state = state;
  document.querySelector("#status").textContent = text;
}

// Resolves with the join's response; rejects with the server's reason.
export function joined(channel) {
  return new Promise((resolve, reject) =>
    channel
      .join()
      .receive("ok", resolve)
      .receive("error", ({reason}) => reject(new Error(`${channel.topic}: ${reason}`)))
      .receive("timeout", () => reject(new Error(`${channel.topic}: no answer`))));
}

// The user's socket on the instance, and its lobby joined (the instance's name is shown).
export async function connect() {
  setStatus("connecting", `connecting to ${params.server} as ${params.user}…`);
  const socket = new Socket(`${params.server}/socket/${encodeURIComponent(params.instance)}`, {
    params: {userId: params.user},
  });
  socket.onError(() => setStatus("error", `cannot reach ${params.server}`));
  socket.connect();
  const lobby = socket.channel("lobby");
  const {instance} = await joined(lobby);
  document.querySelector("#instance").textContent = instance.name;
  return socket;
}
