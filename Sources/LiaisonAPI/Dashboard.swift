public import Foundation
public import LiaisonCore
public import LiaisonNode

/// What the dashboard draws (`GET /v1/dashboard`): the federation as this node sees it.
public struct DashboardView: Codable, Sendable {
    /// This node.
    public var node: String
    /// Every partner of the federation, with the partners it links to.
    public var partners: [Partner]
    /// This node's links, as `GET /v1/links` gives them.
    public var links: [LinkStatus]
    /// Partners quarantined here.
    public var quarantined: [String]
    /// Strikes against each partner, all classes together.
    public var strikes: [String: UInt64]
    /// When this view was read (ISO 8601).
    public var at: String

    /// A partner: its name, whether it relays, and its neighbours.
    public struct Partner: Codable, Sendable {
        public var name: String
        public var relay: Bool
        public var neighbours: [String]
    }

    /// The view from the configuration, the link health and the containment state.
    public init(federation: FederationConfig, links: [LinkStatus], containment: ContainmentState, now: Date) {
        node = federation.me
        partners = federation.partners.map { Partner(name: $0.name, relay: $0.relay, neighbours: $0.neighbours) }
        self.links = links
        quarantined = containment.quarantines.keys.sorted()
        strikes = containment.strikes.mapValues { $0.values.reduce(0) { $0 + $1.total } }
        at = ISO8601.format(millis: ISO8601.millis(now))
    }
}

/// The dashboard page (`GET /dashboard`): one self-contained document, everything inline (no
/// CDN, no fetch but the node's own `/v1/dashboard`). It holds no data itself, so it is
/// served without a token; its script reads the token from the URL's fragment
/// (`/dashboard#token=…`, which the browser never sends to the server) or asks for one, and
/// polls `/v1/dashboard` with it every two seconds.
///
/// It draws the partners on a circle, this node at the top. This node's links are coloured by
/// state (up green, relayed orange, connecting amber, down red); a link whose channels are all
/// down is drawn red and dashed even while a relay carries it, and the relay path in use is
/// drawn over it in blue (this node → relay → partner). Links between other partners are grey:
/// this node does not see their health. Quarantined partners have a red ring. Every element
/// carries its state in `data-` attributes, which the browser test reads.
enum DashboardPage {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Liaison dashboard</title>
        <style>
        body { font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; background: #fafafa; }
        h1 { font-size: 1.3em; margin: 0 0 .3em 0; }
        #status { color: #666; font-size: .9em; margin-bottom: .5em; }
        #status.error { color: #b00020; }
        svg { background: #fff; border: 1px solid #ddd; }
        .edge { stroke-width: 4; }
        .edge.other { stroke: #c8c8c8; stroke-width: 2; }
        .edge.state-up { stroke: #2e7d32; }
        .edge.state-connecting { stroke: #f9a825; }
        .edge.state-down, .edge.state-relayed { stroke: #c62828; stroke-dasharray: 10 6; }
        .relay-path { stroke: #1565c0; stroke-width: 5; fill: none; stroke-dasharray: 2 0; opacity: .85; }
        .node circle { fill: #eceff1; stroke: #455a64; stroke-width: 2; }
        .node.me circle { fill: #bbdefb; stroke: #0d47a1; stroke-width: 3; }
        .node.quarantined circle { stroke: #c62828; stroke-width: 5; }
        .node text { font-size: 13px; text-anchor: middle; dominant-baseline: middle; }
        .label { font-size: 11px; fill: #333; text-anchor: middle; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
        table { border-collapse: collapse; margin-top: 1em; font-size: .9em; }
        th, td { border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: left; }
        td.state-up { color: #2e7d32; } td.state-relayed, td.state-down { color: #c62828; } td.state-connecting { color: #f9a825; }
        #legend span { display: inline-block; margin-right: 1.2em; font-size: .85em; }
        #legend i { display: inline-block; width: 2em; height: .35em; vertical-align: middle; margin-right: .3em; }
        </style>
        </head>
        <body>
        <h1>Liaison: <span id="me">…</span></h1>
        <div id="status">connecting…</div>
        <div id="legend">
          <span><i style="background:#2e7d32"></i>up</span>
          <span><i style="background:#f9a825"></i>connecting</span>
          <span><i style="background:#c62828"></i>down (no channel)</span>
          <span><i style="background:#1565c0"></i>relay path in use</span>
          <span><i style="background:#c8c8c8"></i>not this node's link</span>
        </div>
        <svg id="graph" width="760" height="520" viewBox="0 0 760 520" role="img" aria-label="federation graph"></svg>
        <table id="links"><thead><tr><th>partner</th><th>state</th><th>path</th><th>lag</th><th>RTT</th><th>rejects</th><th>strikes</th><th>quarantined</th></tr></thead><tbody></tbody></table>
        <script>
        "use strict";
        const svgNS = "http://www.w3.org/2000/svg";
        function token() {
          const match = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
          if (match) { sessionStorage.setItem("liaison-token", decodeURIComponent(match[1])); }
          return sessionStorage.getItem("liaison-token");
        }
        function el(name, attributes, text) {
          const node = document.createElementNS(svgNS, name);
          for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
          if (text !== undefined) node.textContent = text;
          return node;
        }
        function cell(row, text, cls) {
          const td = document.createElement("td");
          td.textContent = text;
          if (cls) td.className = cls;
          row.appendChild(td);
        }
        function draw(view) {
          document.getElementById("me").textContent = view.node;
          const svg = document.getElementById("graph");
          while (svg.firstChild) svg.removeChild(svg.firstChild);
          const names = view.partners.map(p => p.name);
          const order = [view.node].concat(names.filter(n => n !== view.node).sort());
          const at = {};
          order.forEach((name, i) => {
            const angle = -Math.PI / 2 + 2 * Math.PI * i / order.length;
            at[name] = { x: 380 + 200 * Math.cos(angle), y: 260 + 200 * Math.sin(angle) };
          });
          const links = {};
          for (const link of view.links) links[link.peer] = link;
          const edges = el("g", { id: "edges" });
          const paths = el("g", { id: "relay-paths" });
          const labels = el("g", { id: "labels" });
          const drawn = new Set();
          for (const partner of view.partners) {
            for (const other of partner.neighbours) {
              const key = [partner.name, other].sort().join("|");
              if (drawn.has(key) || !at[other]) continue;
              drawn.add(key);
              const a = at[partner.name], b = at[other];
              const peer = partner.name === view.node ? other : (other === view.node ? partner.name : null);
              const link = peer ? links[peer] : null;
              const state = link ? link.state : "unknown";
              edges.appendChild(el("line", {
                x1: a.x, y1: a.y, x2: b.x, y2: b.y,
                class: "edge " + (link ? "mine state-" + state : "other"),
                "data-edge": key, "data-peer": peer || "", "data-state": state
              }));
              if (!link) continue;
              const rtt = link.rttMillis != null ? link.rttMillis + " ms" : "–";
              labels.appendChild(el("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 8, class: "label" },
                state + " · lag " + link.lagOps + " ops / " + link.lagSeconds.toFixed(1) + " s · RTT " + rtt));
              const relay = /^relay via (.+)$/.exec(link.path);
              if (relay && at[relay[1]]) {
                const via = at[relay[1]], me = at[view.node], to = at[peer];
                paths.appendChild(el("path", {
                  d: "M" + me.x + " " + me.y + " L" + via.x + " " + via.y + " L" + to.x + " " + to.y,
                  class: "relay-path", "data-peer": peer, "data-via": relay[1]
                }));
              }
            }
          }
          svg.appendChild(edges);
          svg.appendChild(paths);
          svg.appendChild(labels);
          for (const name of order) {
            const partner = view.partners.find(p => p.name === name) || { relay: false };
            const quarantined = view.quarantined.includes(name);
            const group = el("g", {
              class: "node" + (name === view.node ? " me" : "") + (quarantined ? " quarantined" : ""),
              "data-node": name, "data-quarantined": quarantined ? "true" : "false"
            });
            group.appendChild(el("circle", { cx: at[name].x, cy: at[name].y, r: 30 }));
            group.appendChild(el("text", { x: at[name].x, y: at[name].y }, name));
            if (partner.relay) group.appendChild(el("text", { x: at[name].x, y: at[name].y + 44, class: "label" }, "relay"));
            if (quarantined) group.appendChild(el("text", { x: at[name].x, y: at[name].y - 44, class: "label" }, "QUARANTINED"));
            svg.appendChild(group);
          }
          const body = document.querySelector("#links tbody");
          while (body.firstChild) body.removeChild(body.firstChild);
          for (const link of view.links) {
            const row = document.createElement("tr");
            row.setAttribute("data-peer", link.peer);
            row.setAttribute("data-state", link.state);
            cell(row, link.peer);
            cell(row, link.state, "state-" + link.state);
            cell(row, link.path);
            cell(row, link.lagOps + " ops / " + link.lagSeconds.toFixed(1) + " s");
            cell(row, link.rttMillis != null ? link.rttMillis + " ms" : "–");
            cell(row, String(link.rejects));
            cell(row, String(view.strikes[link.peer] || 0));
            cell(row, view.quarantined.includes(link.peer) ? "yes" : "no");
            body.appendChild(row);
          }
          const status = document.getElementById("status");
          status.className = "";
          status.textContent = "as " + view.node + " sees it at " + view.at + " (updates every 2 s)";
          document.body.setAttribute("data-updated", view.at);
        }
        async function refresh() {
          const status = document.getElementById("status");
          const bearer = token();
          if (!bearer) {
            status.className = "error";
            status.textContent = "no token: open /dashboard#token=… with an operator's or auditor's token (api.token or api-auditor.token)";
            return;
          }
          try {
            const response = await fetch("/v1/dashboard", { headers: { Authorization: "Bearer " + bearer } });
            if (!response.ok) {
              status.className = "error";
              status.textContent = "the node answered " + response.status + ": " + (await response.text());
              return;
            }
            draw(await response.json());
          } catch (error) {
            status.className = "error";
            status.textContent = "the node does not answer: " + error;
          }
        }
        refresh();
        setInterval(refresh, 2000);
        </script>
        </body>
        </html>
        """#
}
