import Synchronization

/// The certificates a node trusts, by partner name: SHA-256 fingerprints (lower-case hex) of
/// its neighbours' TLS certificates. Shared by the TLS verification callbacks, the listener
/// that names an accepted channel's partner and the dialers; a re-admission replaces a
/// partner's pin while the node runs, and the revoked certificate is refused from then on.
public final class PinTable: Sendable {
    private let pins: Mutex<[String: String]>

    /// A table of `pins`: fingerprint by partner name.
    public init(_ pins: [String: String]) {
        self.pins = Mutex(pins.mapValues { $0.lowercased() })
    }

    /// Whether a presented certificate's fingerprint is pinned.
    public func contains(_ fingerprint: String) -> Bool {
        pins.withLock { $0.values.contains(fingerprint) }
    }

    /// The partner whose pin `fingerprint` is.
    public func partner(withFingerprint fingerprint: String) -> String? {
        pins.withLock { table in table.first { $0.value == fingerprint }?.key }
    }

    /// `partner`'s pin.
    public func fingerprint(of partner: String) -> String? {
        pins.withLock { $0[partner] }
    }

    /// Pins `fingerprint` for `partner` instead of its earlier certificate.
    public func pin(_ fingerprint: String, for partner: String) {
        pins.withLock { $0[partner] = fingerprint.lowercased() }
    }

    /// Every pin.
    public var fingerprints: Set<String> { pins.withLock { Set($0.values) } }
}
