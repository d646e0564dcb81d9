import ConfigFiles
import EventLog
import EventSchemas
import GRDB

/// What a long-running loop does about an error — decided here, in one place, for every loop of
/// the connectors and of the orchestrator.
///
/// | error | disposition |
/// |-------|-------------|
/// | ``LogError`` `.brokerUnreachable`, `.timedOut`, `.unknownTopic`, `.invalidOffset`; `.storage` and `.backend` marked retriable | ``retry`` |
/// | ``LogError`` `.recordTooLarge`; a `ValidationFailure`; a department-database error the row itself causes (constraint, missing table or column, wrong type, too big) | ``deadLetter`` |
/// | ``LogError`` `.groupBusy` (the group rebalanced, this member's generation is gone) | ``repoll`` |
/// | ``LogError`` `.closed`, `.authorizationFailed`, `.configuration`, `.invalidTopic`, `.invalidPartition`; `.storage` and `.backend` not retriable; a damaged SQLite file (a department's database, the orchestrator's store); a `ConfigFileError` (a connector file that does not match the department's system); a ``FatalFailure`` | ``fatal`` |
/// | anything else (HTTP, file and network errors, the department database busy or locked) | ``retry`` |
///
/// Decisions where retrying is arguable: a missing topic is retried (an operator can create it with
/// `onewindow topics apply` while the connector waits, and the log line says so); a timed-out Kafka
/// append is retried although it may have been written (event ids make the repeat harmless).
/// A `CancellationError` is not an error to classify: every loop rethrows it before asking.
public enum ErrorDisposition: Sendable, Hashable, CustomStringConvertible {
    /// It may succeed later: wait (exponential back-off) and do the same again.
    case retry
    /// This record can never succeed: send it to the dead-letter topic with the reason and go on.
    case deadLetter
    /// The consumer group rebalanced under this member: drop what the uncommitted batch assumed
    /// (its partitions may now be another member's) and poll again. Records not committed are
    /// delivered again, to whoever owns their partition now; sinks deliver idempotently by event id.
    case repoll
    /// The client is closed or cannot work (credentials, configuration, a damaged file): stop the
    /// process with a non-zero status so that a supervisor restarts it with fresh clients.
    case fatal

    /// The disposition of `error`.
    public static func of(_ error: any Error) -> ErrorDisposition {
        switch error {
        case let error as LogError:
            switch error.code {
            case .recordTooLarge: return .deadLetter
            case .groupBusy: return .repoll
            case .closed, .authorizationFailed, .configuration, .invalidTopic, .invalidPartition: return .fatal
            case .brokerUnreachable, .timedOut, .unknownTopic, .invalidOffset: return .retry
            default: return error.isRetriable ? .retry : .fatal  // .storage, .backend
            }
        case is ValidationFailure:
            return .deadLetter
        case let error as DatabaseError:
            switch error.resultCode {
            case .SQLITE_CONSTRAINT, .SQLITE_ERROR, .SQLITE_MISMATCH, .SQLITE_TOOBIG, .SQLITE_RANGE: return .deadLetter
            case .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_READONLY, .SQLITE_AUTH, .SQLITE_PERM: return .fatal
            default: return .retry  // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, …: wait and retry
            }
        case is FatalFailure, is ConfigFileError, is CancellationError:
            return .fatal
        default:
            return .retry
        }
    }

    public var description: String {
        switch self {
        case .retry: "retry"
        case .deadLetter: "dead-letter"
        case .repoll: "poll again"
        case .fatal: "fatal"
        }
    }
}

/// A part of a long-running process (a connector's source or sink, the orchestrator's consumer,
/// relay or timer loop) stopped by an error it cannot get past: the process stops, and its
/// command (`onewindow connector run`, `onewindow orchestrator run`) exits with ``exitStatus``
/// after one critical line, so that a supervisor restarts it.
public struct FatalFailure: Error, Sendable, CustomStringConvertible {
    /// The exit status of a long-running command after a fatal error: 75 (`EX_TEMPFAIL` of
    /// sysexits.h, "try again later"): restarting the process may well succeed.
    public static let exitStatus: Int32 = 75

    /// The part that failed, e.g. `table:payments` or `orchestrator relay`.
    public var part: String
    /// What it was doing, e.g. `publishing to the bus`; empty when the part did not say.
    public var action: String
    /// The error.
    public var underlying: any Error

    public init(part: String, action: String, underlying: any Error) {
        self.part = part
        self.action = action
        self.underlying = underlying
    }

    public var description: String {
        action.isEmpty
            ? "\(part) failed and retrying in this process cannot help (restarting it may): \(underlying)"
            : "\(part): \(action) failed and retrying in this process cannot help (restarting it may): \(underlying)"
    }
}
