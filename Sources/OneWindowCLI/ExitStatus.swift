import ArgumentParser
import Bus
import CivilTime
import EventLog
import EventSchemas
import Foundation
import KafkaLog

/// The exit statuses of `onewindow`: the same cause ends every command with the same status.
///
/// The values are those of BSD's `sysexits.h`, which scripts and supervisors already know; the
/// README's "Exit status" section lists them. ``of(_:)`` is the one place an error is turned
/// into a status.
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Done.
    case ok = 0
    /// Any failure not listed below; the message says what.
    case failure = 1
    /// The command line is wrong: an unknown option, a missing argument, options that do not go
    /// together, a bus address without its scheme. The subcommand's usage is printed.
    case usage = 64
    /// The input was read but refused: an event that fails validation, a body that is not JSON.
    case refused = 65
    /// Something named does not exist: a file, the embedded log, a consumer group, a topic, an
    /// event type.
    case notFound = 66
    /// The bus cannot be reached (no Kafka broker answered).
    case unavailable = 69
    /// A bug: an error that should not happen. Please report it with the message.
    case `internal` = 70
    /// The log or the orchestrator's store cannot be written or read (a read-only file or folder,
    /// a corrupt file); a full disk is ``temporary``.
    case ioError = 74
    /// A temporary failure: trying again later may succeed (a timeout, a busy group).
    case temporary = 75
    /// The credentials or ACLs do not allow the operation.
    case permission = 77
    /// A configuration file is wrong: the topic catalog, a schema, a Kafka properties file.
    case configuration = 78

    /// The status a command ends with when it fails with `error`.
    public static func of(_ error: any Error) -> ExitStatus {
        switch error {
        case let failure as CommandFailure: return failure.status
        case is ValidationError, is BusAddressError: return .usage
        case is ValidationFailure: return .refused
        case is CatalogError, is SchemaLoadError: return .configuration
        // The calendar file missing is "not found"; broken, or not covering a day asked about, it
        // needs mending (a new year's notice added): a configuration file is wrong.
        case let error as WorkingDayCalendarError: return error.code == .unreadable ? .notFound : .configuration
        case let error as LogError: return of(error)
        case is CancellationError: return .ok
        default: return .failure
        }
    }

    /// The status for an error of the log (either backend).
    static func of(_ error: LogError) -> ExitStatus {
        switch error.code {
        case .unknownTopic, .logNotFound: return .notFound
        case .brokerUnreachable: return .unavailable
        case .authorizationFailed: return .permission
        case .configuration: return .configuration
        case .recordTooLarge, .invalidTopic, .invalidPartition, .invalidOffset: return .refused
        case .closed: return .internal
        default:
            if error.isRetriable { return .temporary }
            return error.code == .storage ? .ioError : .failure
        }
    }
}

/// A command that cannot do what was asked, with the status it ends with and a message that
/// says what failed and what to do.
struct CommandFailure: Error, CustomStringConvertible {
    var status: ExitStatus
    var message: String

    init(_ status: ExitStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    var description: String { message }
}

extension OneWindowCommand {
    /// Reports a failed command on standard error and ends the process with its status.
    ///
    /// A usage error (status 64) is followed by the usage of the subcommand that failed (not the
    /// root's); any other error by its message alone.
    static func fail(_ command: any ParsableCommand.Type, with error: any Error) -> Never {
        if let code = error as? ExitCode {
            // A command that has already said what went wrong.
            terminate(code.rawValue)
        }
        let status = ExitStatus.of(error)
        if status == .ok { terminate(0) }
        let message: String
        switch error {
        case let error as ValidationError: message = error.message
        case let error as any CustomStringConvertible: message = error.description
        default: message = "\(error)"
        }
        var text = "Error: \(message)"
        if status == .usage {
            let path = (commandPath(of: command) ?? ["onewindow", command._commandName]).joined(separator: " ")
            text += "\nUsage: \(usageString(for: command))"
            text += "\n  See '\(path) --help' for more information."
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
        terminate(status.rawValue)
    }

    /// The command names from the root to `command`, e.g. `["onewindow", "topics", "describe"]`;
    /// `nil` for a command outside the tree (ArgumentParser's `help`).
    static func commandPath(of command: any ParsableCommand.Type) -> [String]? {
        func search(_ node: any ParsableCommand.Type, _ path: [String]) -> [String]? {
            let here = path + [node._commandName]
            if ObjectIdentifier(node) == ObjectIdentifier(command) { return here }
            for child in node.configuration.subcommands {
                if let found = search(child, here) { return found }
            }
            return nil
        }
        return search(OneWindowCommand.self, [])
    }
}

/// Ends the process (a free function: inside a command type, `exit` names ArgumentParser's).
/// `exit` first waits for the Kafka clients still being destroyed (``KafkaTeardown``).
private func terminate(_ status: Int32) -> Never {
    fflush(nil)
    exit(status)
}

/// Reads a command's input: a file, or standard input for `-` or no path.
enum InputFile {
    /// The bytes of `path`, or of standard input when `path` is nil or `-`.
    /// - Throws: ``CommandFailure`` (``ExitStatus/notFound``) with the path and the system's reason.
    static func read(_ path: String?, what: String = "the body") throws -> Data {
        guard let path, path != "-" else {
            if isatty(STDIN_FILENO) == 1 {
                printError("reading \(what) from standard input (end it with Ctrl-D)…")
            }
            return FileHandle.standardInput.readDataToEndOfFile()
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CommandFailure(.notFound, "cannot read \(what) from \(path): it is a directory")
        }
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw CommandFailure(.notFound, "cannot read \(what) from \(path): \(reason)")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            return try handle.readToEnd() ?? Data()
        } catch {
            throw CommandFailure(.notFound, "cannot read \(what) from \(path): \(error.localizedDescription)")
        }
    }
}
