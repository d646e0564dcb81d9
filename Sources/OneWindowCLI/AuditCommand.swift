import ArgumentParser
import Audit
import CivilTime
import Connectors
import EventSchemas
import Foundation
import Logging

/// `onewindow audit verify | list | record`: the hash-chained audit log.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify, list and feed the hash-chained audit log (grants, refusals, replays, redrives, purges, decisions).",
        subcommands: [Verify.self, List.self, Record.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every entry's hash and link; name the first entry edited, removed or reordered (exit 1).",
            discussion: """
                Prints the number of entries and the head (the last entry's hash). Removing the \
                last entries leaves a shorter chain that is still whole: write the head down (or \
                keep it elsewhere) and pass it back with --head SEQ:HASH to check it is still there.
                Examples:
                  onewindow audit verify
                  onewindow audit verify --head 1042:3f7a…
                """)
        @OptionGroup var audit: AuditOptions
        @Option(help: "An earlier head, SEQ:HASH, that must still be in the log.") var head: String?

        func validate() throws {
            if let head {
                let parts = head.split(separator: ":")
                guard parts.count == 2, Int64(parts[0]) != nil, parts[1].count == 64 else {
                    throw ValidationError("--head takes SEQ:HASH (an entry number and 64 hex digits), not '\(head)'")
                }
            }
        }

        func run() async throws {
            let log = try audit.openExisting()
            let result = try await log.verify()
            print("\(log.path): \(result)")
            guard result.isIntact else {
                throw CommandFailure(.failure, "the audit log \(log.path) was tampered with: \(result)")
            }
            if let head {
                let parts = head.split(separator: ":")
                let sequence = Int64(parts[0])!
                let stored = try await log.hash(ofEntry: sequence)
                guard stored == String(parts[1]).lowercased() else {
                    throw CommandFailure(
                        .failure,
                        stored == nil
                            ? "entry \(sequence) of the head given is no longer in \(log.path): entries from \(sequence) on were removed"
                            : "entry \(sequence) of \(log.path) has hash \(stored!), not the head given: the log was rewritten from there")
                }
                print("head \(sequence) is still in the log")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List entries, oldest first: sequence, time, actor, action, subject, details.",
            discussion: """
                --action takes a name or a prefix ending in * (dlq.*). Times: RFC 3339 or \
                'YYYY-MM-DD HH:MM:SS' China time.
                Examples:
                  onewindow audit list --action access.refused --since '2026-03-02 00:00:00'
                  onewindow audit list --subject RA-2026-000001
                  onewindow audit list --actor ops-li-wei --limit 20 --json
                """)
        @OptionGroup var audit: AuditOptions
        @Option(help: "Only this action (or prefix*).") var action: String?
        @Option(name: .customLong("by"), help: "Only entries by this actor.") var by: String?
        @Option(help: "Only entries about this subject.") var subject: String?
        @Option(help: "Only entries appended at or after this time.") var since: String?
        @Option(help: "Only entries appended before this time.") var until: String?
        @Option(help: "Only the last N matching entries.") var limit: Int?
        @Flag(help: "One JSON object a line, with the hashes.") var json = false

        func validate() throws {
            for (name, value) in [("--since", since), ("--until", until)] {
                if let value, ChinaTime.parse(value) == nil {
                    throw ValidationError("\(name) takes RFC 3339 or 'YYYY-MM-DD HH:MM:SS' (China time), not '\(value)'")
                }
            }
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            let log = try audit.openExisting()
            let entries = try await log.entries(
                matching: AuditLog.Filter(
                    action: action, actor: by, subject: subject, since: since.flatMap(ChinaTime.parse),
                    until: until.flatMap(ChinaTime.parse), limit: limit))
            for entry in entries {
                if json {
                    var object: JSONObject = [
                        "sequence": .integer(entry.sequence), "time": .string(ChinaTime.rfc3339(entry.time)),
                        "actor": .string(entry.actor), "action": .string(entry.action.rawValue),
                        "subject": .string(entry.subject), "details": entry.detailsValue,
                        "previousHash": .string(entry.previousHash), "hash": .string(entry.hash),
                    ]
                    if let id = entry.eventId { object["eventId"] = .string(id) }
                    print(String(decoding: JSONValue.object(object).serialized(), as: UTF8.self))
                } else {
                    print(
                        "\(entry.sequence)  \(ChinaTime.rfc3339(entry.time))  \(entry.actor)  \(entry.action)  \(entry.subject)  \(entry.details)"
                    )
                }
            }
        }
    }

    struct Record: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record every approval decision from the bus into the audit log (a long-running service).",
            discussion: """
                Joins consumer group onewindow.audit on every topic carrying approval.decided \
                (approval.<department>.decided) and appends one approval.decided entry per \
                decision, once per event id however often it is delivered; offsets are committed \
                after each batch is appended. Stops cleanly on SIGTERM or SIGINT; what cannot be \
                retried ends it with status 75 for a supervisor to restart it.
                Examples:
                  onewindow audit record
                  onewindow audit record --bus kafka:localhost:9092 --metrics-port 9467
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var audit: AuditOptions
        @Option(help: "Serve Prometheus metrics at http://127.0.0.1:PORT/metrics. Default: none.")
        var metricsPort: Int?
        @Option(help: "Log level: trace, debug, info, notice, warning, error.")
        var logLevel: String = "info"

        func run() async throws {
            let level = bootstrapLogging(logLevel)
            let logger = Logger(label: "onewindow.audit")
            if metricsPort != nil { ConnectorMetrics.bootstrap() }
            let catalog = try options.loadCatalog()
            let topics = DecisionRecorder.topics(in: catalog)
            guard !topics.isEmpty else {
                throw CommandFailure(.configuration, "the catalog names no topic carrying \(DecisionRecorder.decisionType)")
            }
            let log = try options.openLog(create: true, kafkaLogLevel: level)
            let recorder = DecisionRecorder(audit: try audit.openForAppending(), log: log, topics: topics, logger: logger)
            var services = [recorder.service]
            if let metricsPort {
                services.append(try ConnectorMetrics.service(on: "127.0.0.1:\(metricsPort)", logger: logger))
            }
            logger.notice("audit recorder starting: \(topics.count) decision topics into \(recorder.audit.path)")
            try await runServiceGroup(services, log: log, logger: logger, name: "audit recorder")
        }
    }
}
