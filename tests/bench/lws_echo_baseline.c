/*
 * lws_echo_baseline: what libwebsockets alone costs, the WebSocket baseline ws_bench is
 * compared against (tests/bench/run_ws_bench.sh). One thread on lws's own default event
 * loop (poll), one vhost; every text message is sent back as it came, one lws_write per
 * writable callback (as prismd's gateway writes): no parsing, nothing else.
 *
 * usage: lws_echo_baseline [--host 127.0.0.1] [--port P]
 * Prints "event=listening ws=HOST:PORT" on stdout once bound (--port 0, the default,
 * picks a free port). Exits 0 on SIGTERM or SIGINT.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One message waiting to go back, with the LWS_PRE bytes lws_write needs before it. */
struct pending {
  struct pending *next;
  size_t len;
  unsigned char bytes[]; /* LWS_PRE, then len bytes of text */
};

/* Per connection (lws allocates and zeroes it): the queue of echoes, and the message
 * being assembled when one arrives in several fragments. */
struct echo_connection {
  struct pending *head, *tail;
  unsigned char *partial;
  size_t partial_len;
};

static volatile sig_atomic_t stopping;
static struct lws_context *context;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
  lws_cancel_service(context); /* async-signal-safe: it writes to lws's event pipe */
}

static int enqueue(struct echo_connection *c, const unsigned char *text, size_t len) {
  struct pending *p = malloc(sizeof *p + LWS_PRE + len);
  if (p == NULL) return -1;
  p->next = NULL;
  p->len = len;
  memcpy(p->bytes + LWS_PRE, text, len);
  if (c->tail != NULL) c->tail->next = p; else c->head = p;
  c->tail = p;
  return 0;
}

static void drop_all(struct echo_connection *c) {
  while (c->head != NULL) {
    struct pending *p = c->head;
    c->head = p->next;
    free(p);
  }
  c->tail = NULL;
  free(c->partial);
  c->partial = NULL;
  c->partial_len = 0;
}

static int on_echo(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len) {
  struct echo_connection *c = user;
  switch (reason) {
    case LWS_CALLBACK_RECEIVE: {
      const int last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
      if (last && c->partial == NULL) {
        if (enqueue(c, in, len) != 0) return -1;
      } else {
        unsigned char *grown = realloc(c->partial, c->partial_len + len);
        if (grown == NULL) return -1;
        memcpy(grown + c->partial_len, in, len);
        c->partial = grown;
        c->partial_len += len;
        if (!last) return 0;
        const int failed = enqueue(c, c->partial, c->partial_len);
        free(c->partial);
        c->partial = NULL;
        c->partial_len = 0;
        if (failed) return -1;
      }
      lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
      struct pending *p = c->head;
      if (p == NULL) return 0;
      const int n = lws_write(wsi, p->bytes + LWS_PRE, p->len, LWS_WRITE_TEXT);
      c->head = p->next;
      if (c->head == NULL) c->tail = NULL;
      free(p);
      if (n < 0) return -1;
      if (c->head != NULL) lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_CLOSED:
      drop_all(c);
      return 0;
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

static const struct lws_protocols protocols[] = {
    {"echo", on_echo, sizeof(struct echo_connection), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port P]\n", argv[0]);
      return 2;
    }
  }
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = host;
  /* Any upgrade path is served by the first protocol, whatever sub-protocol it asks for. */
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
  context = lws_create_context(&info);
  if (context == NULL) {
    fprintf(stderr, "lws_echo_baseline: lws_create_context failed (%s:%d)\n", host, port);
    return 1;
  }
  struct lws_vhost *vhost = lws_get_vhost_by_name(context, "default");
  const int bound = vhost != NULL ? lws_get_vhost_listen_port(vhost) : -1;
  if (bound <= 0) {
    fprintf(stderr, "lws_echo_baseline: no listening port on %s:%d\n", host, port);
    lws_context_destroy(context);
    return 1;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  printf("event=listening ws=%s:%d\n", host, bound);
  fflush(stdout);
  while (!stopping) {
    if (lws_service(context, 0) < 0) break;
  }
  lws_context_destroy(context);
  return 0;
}
