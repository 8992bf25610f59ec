// The API explorer at /graphiql: GraphiQL (installed from npm next to this file) sending
// queries and mutations to this server's /api, and subscriptions over its Phoenix channel
// socket, /socket/websocket, which speaks Absinthe's protocol (V1 frames: JSON objects).
(function () {
  "use strict";

  var CONTROL = "__absinthe__:control";
  var HEARTBEAT_MS = 30000;
  var DEFAULT_QUERY = [
    "# The Proca API explorer: queries go to this server's /api.",
    "#",
    "# Logged in on this site, you are that user. Otherwise",
    "# put an API token in Headers below (one is made by",
    "# `proca-server user token EMAIL`):",
    '#   {"Authorization": "Bearer API-..."}',
    "",
    "{",
    "  currentUser {",
    "    email",
    "  }",
    "}",
    "",
  ].join("\n");

  // A graphql-ws-like client (`subscribe(payload, sink) -> dispose`), which is what
  // GraphiQL's fetcher takes as `wsClient`, over one lazily opened Phoenix socket.
  function phoenixClient(url) {
    var socket = null;
    var opened = null;
    var heartbeat = null;
    var lastRef = 0;
    var replies = new Map(); // ref -> {resolve, reject}
    var sinks = new Map(); // subscription id (the topic of its data) -> sink

    function push(topic, event, payload) {
      return new Promise(function (resolve, reject) {
        if (socket === null || socket.readyState !== WebSocket.OPEN) {
          reject(new Error("The subscription socket is not open"));
          return;
        }
        var ref = String(++lastRef);
        replies.set(ref, { resolve: resolve, reject: reject });
        socket.send(JSON.stringify({ topic: topic, event: event, payload: payload, ref: ref }));
      });
    }

    function closed() {
      clearInterval(heartbeat);
      socket = null;
      opened = null;
      var error = new Error("The subscription socket closed");
      replies.forEach(function (waiter) { waiter.reject(error); });
      replies.clear();
      sinks.forEach(function (sink) { sink.error(error); });
      sinks.clear();
    }

    function open() {
      if (opened !== null) return opened;
      opened = new Promise(function (resolve, reject) {
        var ws = new WebSocket(url);
        socket = ws;
        ws.onopen = function () {
          heartbeat = setInterval(function () {
            push("phoenix", "heartbeat", {}).catch(function () {});
          }, HEARTBEAT_MS);
          push(CONTROL, "phx_join", {}).then(resolve, reject);
        };
        ws.onmessage = function (message) {
          var frame = JSON.parse(message.data);
          if (frame.event === "phx_reply") {
            var waiter = replies.get(frame.ref);
            replies.delete(frame.ref);
            if (waiter) waiter.resolve(frame.payload);
          } else if (frame.event === "subscription:data") {
            var sink = sinks.get(frame.topic);
            if (sink) sink.next(frame.payload.result);
          }
        };
        ws.onclose = function () {
          if (socket === ws) closed();
          reject(new Error("The subscription socket could not be opened"));
        };
      });
      return opened;
    }

    function unsubscribe(id) {
      push(CONTROL, "unsubscribe", { subscriptionId: id }).catch(function () {});
    }

    return {
      subscribe: function (payload, sink) {
        var id = null;
        var disposed = false;
        open()
          .then(function () {
            return push(CONTROL, "doc", {
              query: payload.query,
              variables: payload.variables || null,
              operationName: payload.operationName || null,
            });
          })
          .then(function (reply) {
            var response = reply.response || {};
            if (reply.status !== "ok" || !response.subscriptionId) {
              // a refused subscription, or a query or mutation: one answer and done
              sink.next(response);
              sink.complete();
            } else if (disposed) {
              unsubscribe(response.subscriptionId);
            } else {
              id = response.subscriptionId;
              sinks.set(id, sink);
            }
          })
          .catch(function (error) { sink.error(error); });
        return function () {
          disposed = true;
          if (id !== null && sinks.delete(id)) unsubscribe(id);
        };
      },
    };
  }

  var socketUrl = new URL("/socket/websocket?vsn=1.0.0", window.location.href);
  socketUrl.protocol = socketUrl.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({
    url: new URL("/api", window.location.href).href,
    wsClient: phoenixClient(socketUrl.href),
    // the server answers plain JSON; no multipart incremental delivery
    enableIncrementalDelivery: false,
  });

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: DEFAULT_QUERY,
      defaultEditorToolsVisibility: "headers",
    })
  );
})();
