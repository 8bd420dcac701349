// The cluster as plugins reach it (plugin.h "Across a cluster", DESIGN.md §7): leases,
// requests forwarded to the node that serves them, and the stand-in sessions through
// which a service on one node reaches clients connected to another. The messages travel
// on the nodes' own channels (cluster::ClusterLink); without a cluster every lease is this
// node's and nothing is forwarded.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cluster/topic_bus.hpp"
#include "net/loop_access.hpp"
#include "prism/plugin.h"

namespace prism::cluster {
class NodeRegistry;
class ClusterLink;
}  // namespace prism::cluster

namespace prism::plugins {

class HostView;
class LoadedPlugin;

class ClusterHost {
 public:
  // `loops` are the workers' (forwarded requests run there); `plugins` finds a service's
  // serving version by name. All three outlive this.
  ClusterHost(cluster::TopicBus& bus, std::vector<net::LoopAccess*> loops, const HostView& plugins);
  ~ClusterHost();
  ClusterHost(const ClusterHost&) = delete;
  ClusterHost& operator=(const ClusterHost&) = delete;

  // prism.yaml has `cluster:`: leases asked before attach (plugins load before the node
  // joins) wait for it rather than being this node's by default.
  void expect_cluster() { expected_ = true; }
#ifdef PRISM_HAVE_CLUSTER
  // The node joined: leases are Redis's, forwards travel over `link`. Before the workers
  // run; detach before either goes away.
  void attach(cluster::NodeRegistry& registry, cluster::ClusterLink& link);
  void detach();
#endif

  // plugin.h lease / lease_release / forward, for `plugin`'s service.
  void lease(const LoadedPlugin& plugin, std::string_view name, prism_store_done_fn done, void* user);
  prism_status_t release(const LoadedPlugin& plugin, std::string_view name);
  prism_status_t forward(const LoadedPlugin& plugin, prism_request_t* request, std::string_view node,
                         const prism_forward_t& what);

  // The calls of plugin.h on a stand-in session (net::is_remote_session): sent to its node.
  prism_status_t push(uint64_t session, std::string_view topic, uint32_t packet_id, uint32_t delivery,
                      std::span<const uint8_t> payload);
  prism_status_t subscribe(uint64_t session, std::string_view topic, bool subscribed);
  prism_status_t end_channel(uint64_t session, std::string_view topic, std::string_view reason, bool rejoin);
  // The real session and node behind a stand-in.
  std::optional<std::pair<uint64_t, std::string>> resolve(uint64_t stand_in) const;

  // A session of this node closed (its worker's dispatcher): the nodes that served it
  // hear so, and close its stand-ins there.
  void session_closed(uint64_t session);

  class RemoteRequest;

 private:
  struct Pending {  // a request forwarded from here, until its answer
    prism_request_t* request = nullptr;
    std::string node;
    uint64_t session = 0;
    std::string held;  // the receive_topic held for it, "" for none
    std::chrono::steady_clock::time_point sent;
  };
  struct WaitingLease {
    std::string name;
    net::LoopAccess* loop;
    prism_store_done_fn done;
    void* user;
    // Kept loaded until the completion ran (a reload must not unmap its code: store_api).
    std::shared_ptr<const LoadedPlugin> plugin;
  };

  // On the link's subscriber thread.
  void on_node_message(std::string_view from, std::string_view body);
  void on_forwarded(const std::string& from, std::string_view body);
  void on_answer(std::string_view body);
  // The registry's heartbeat thread.
  void on_node_left(const std::string& node);
  void on_lease_lost(const std::string& name);

  void start_lease(WaitingLease w);
  // Answers a forwarded request here with `status` (the node did not answer, or left).
  void fail_pending(uint64_t id, const std::string& why);
  void answer(uint64_t id, prism_status_t status, std::string_view message, std::span<const uint8_t> payload);
  // Answers what waited longer than kLostAnswer (its answer was lost with a Redis restart;
  // the client has had TIMEOUT long ago), so pending_ cannot grow without bound.
  void sweep_pending();
  // Sends a message to `node`'s host; nothing happens when it is gone.
  void send(const std::string& node, std::string body);
  uint64_t stand_in_for(const std::string& node, uint64_t session, bool* made);
  void close_stand_in(uint64_t stand_in, std::string_view reason);
  std::shared_ptr<LoadedPlugin> find(std::string_view service) const;
  net::LoopAccess* loop_here() const;

  cluster::TopicBus& bus_;
  std::vector<net::LoopAccess*> loops_;
  const HostView& plugins_;
  bool expected_ = false;
  mutable std::mutex mutex_;
  cluster::NodeRegistry* registry_ = nullptr;  // under mutex_
  cluster::ClusterLink* link_ = nullptr;       // under mutex_
  std::vector<WaitingLease> waiting_leases_;  // asked before attach
  uint64_t next_forward_ = 0;
  std::map<uint64_t, Pending> pending_;
  // This node's sessions: the nodes their requests went to, and the topics other nodes
  // subscribed them to (ended with rejoin when that node leaves).
  std::map<uint64_t, std::set<std::string>> served_by_;
  std::map<uint64_t, std::map<std::string, std::string>> remote_topics_;
  // Other nodes' sessions as stand-ins here.
  uint64_t next_stand_in_ = 0;
  std::map<uint64_t, std::pair<uint64_t, std::string>> stand_ins_;       // stand-in -> (session, node)
  std::map<std::pair<std::string, uint64_t>, uint64_t> stand_in_of_;     // (node, session) -> stand-in
};

// The cluster services plugins reach, set by the server before plugins load and cleared
// after the last version is gone (like set_realtime).
void set_cluster_host(ClusterHost* host);
ClusterHost* cluster_host();

}  // namespace prism::plugins
