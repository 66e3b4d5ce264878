/// An error raised by Liaison: a code a program can match on, a message that tells a person
/// what went wrong and what to do, and the underlying cause when there is one.
public struct LiaisonError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case invalidArgument = "invalid-argument"
            case notFound = "not-found"
            case alreadyExists = "already-exists"
            case corrupt
            case invalidOp = "invalid-op"
            case forbidden
            case io
            case tampered
            case conflict
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Input from a user or program is malformed or out of range.
        public static let invalidArgument = Code(.invalidArgument)
        /// The thing asked for does not exist.
        public static let notFound = Code(.notFound)
        /// Creating would overwrite something that exists.
        public static let alreadyExists = Code(.alreadyExists)
        /// Stored data cannot be read back as written.
        public static let corrupt = Code(.corrupt)
        /// An op is malformed, badly signed or inconsistent.
        public static let invalidOp = Code(.invalidOp)
        /// The author or peer may not do what it tried.
        public static let forbidden = Code(.forbidden)
        /// A file or socket operation failed.
        public static let io = Code(.io)
        /// An append-only record was altered.
        public static let tampered = Code(.tampered)
        /// The thing is in a state that refuses the request (an item already deleted or recalled).
        public static let conflict = Code(.conflict)

        public var description: String { base.rawValue }
    }

    /// What kind of failure this is.
    public var code: Code
    /// One line for a person: what went wrong and what to do about it.
    public var message: String
    /// The error that caused this one, if any.
    public var cause: (any Error)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message) (\(cause))" }
        return message
    }
}
