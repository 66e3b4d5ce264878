/// Polls `condition` every `interval` until it holds or `timeout` passes, and returns whether
/// it held. The condition is checked once more at the deadline, so a last slow poll counts.
///
/// The one poll-until-deadline helper of the test targets: tests wait for real processes,
/// sockets and links with it instead of sleeping for a fixed time.
public func eventually(
    timeout: Duration = .seconds(30),
    every interval: Duration = .milliseconds(50),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}
