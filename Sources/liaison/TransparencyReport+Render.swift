import Foundation
import LiaisonNode

/// The transparency report for people: a terminal summary and a self-contained HTML page.
extension TransparencyReport {
    /// "3 (SECRET 2, CONFIDENTIAL 1)": a count and its split.
    static func split(_ counts: [String: Int]) -> String {
        counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    static func describe(_ flow: Flow) -> String {
        guard flow.ops > 0 else { return "0" }
        var text = "\(flow.ops) ops"
        if flow.items > 0 { text += " of \(flow.items) items" }
        if let reasons = flow.byReason, !reasons.isEmpty { text += "; by reason: " + split(reasons) }
        text += "; by classification: " + split(flow.byClassification)
        if !flow.byCollection.isEmpty { text += "; by collection: " + split(flow.byCollection) }
        return text
    }

    /// The rows of one link: label and text.
    static func rows(_ link: Link) -> [(String, String)] {
        [
            ("sent", describe(link.sent)), ("received", describe(link.received)),
            ("withheld", describe(link.withheld)), ("redacted", describe(link.redacted)),
            ("refused", describe(link.refused)), ("recalled", describe(link.recalled)),
            ("purged", describe(link.purged)),
            ("strikes", link.strikes.isEmpty ? "0" : split(link.strikes)),
        ]
    }

    /// The terminal form.
    func text() -> String {
        var lines = [
            "transparency report of \(node) (\(nodeID))",
            "period \(from) to \(to); \(entriesInPeriod) custody entries",
            "computed from custody head \(custodyHead.sequence) \(custodyHead.hash) at \(generatedAt)",
        ]
        for link in links {
            lines.append("")
            lines.append("partner \(link.partner)")
            for (label, value) in Self.rows(link) {
                lines.append("  \(label.padding(toLength: 9, withPad: " ", startingAt: 0)) \(value)")
            }
        }
        lines.append("")
        if containment.isEmpty {
            lines.append("no quarantines or releases in the period")
        } else {
            for event in containment { lines.append("\(event.at) \(event.partner) \(event.event): \(event.detail)") }
        }
        lines.append("")
        lines.append(
            "signed (Ed25519, the node's key); 'liaison report --json' gives the form 'liaison report verify' checks")
        return lines.joined(separator: "\n")
    }

    /// A page with no scripts and no external resources.
    func html() -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        }
        var body = """
            <h1>Transparency report of \(escape(node))</h1>
            <p>NodeID <code>\(escape(nodeID))</code><br>Period \(escape(from)) to \(escape(to)), \
            \(entriesInPeriod) custody entries<br>Computed from custody head \(custodyHead.sequence) \
            <code>\(escape(custodyHead.hash))</code> at \(escape(generatedAt))</p>
            """
        for link in links {
            body += "<h2>Partner \(escape(link.partner))</h2><table>"
            for (label, value) in Self.rows(link) {
                body += "<tr><th>\(escape(label))</th><td>\(escape(value))</td></tr>"
            }
            body += "</table>"
        }
        body += "<h2>Quarantines and releases</h2>"
        if containment.isEmpty {
            body += "<p>None in the period.</p>"
        } else {
            body += "<table>"
            for event in containment {
                body +=
                    "<tr><td>\(escape(event.at))</td><td>\(escape(event.partner))</td><td>\(escape(event.event))</td><td>\(escape(event.detail))</td></tr>"
            }
            body += "</table>"
        }
        body += "<p>Signature (Ed25519, base64): <code>\(escape(signature ?? "none"))</code></p>"
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Liaison transparency report: \(escape(node))</title>
            <style>body{font-family:sans-serif;max-width:60em;margin:2em auto}th{text-align:left;padding-right:1em;vertical-align:top}td{padding:.2em .5em}code{word-break:break-all}</style>
            </head><body>
            \(body)
            </body></html>
            """
    }
}
