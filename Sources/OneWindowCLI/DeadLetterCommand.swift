import ArgumentParser
import Bus
import EventLog
import EventModel
import EventSchemas
import Foundation

/// `onewindow dlq list|show|redrive|purge`: the dead letters, for operators (``DeadLetterOffice``).
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Dead letters: list, show, redrive to their topic, or purge the records validation refused.",
        discussion: """
            A dead letter's id is its position, TOPIC/PARTITION/OFFSET (deadletter.record.refused/0/42). \
            The dead-letter topic is append-only: a redrive or purge appends a marker to \
            deadletter.record.handled, and list leaves handled dead letters out unless --all. \
            A redrive validates each record again with the catalog as it is now; what passes goes to \
            its original topic, what fails comes back as a new dead letter with the new reason.
            Examples:
              onewindow dlq list --code unknown-type --since 2025-03-01T00:00:00+08:00
              onewindow dlq show deadletter.record.refused/0/42
              onewindow dlq redrive --topic urban.signboard.approved
              onewindow dlq purge --code wrong-topic --until 2025-03-01T00:00:00Z --yes
            """,
        subcommands: [List.self, Show.self, Redrive.self, Purge.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List dead letters (open ones; --all adds redriven and purged ones with their state).")
        @OptionGroup var options: BusOptions
        @OptionGroup var filter: DeadLetterFilterOptions
        @Flag(help: "Also list handled (redriven or purged) dead letters, with their state.") var all = false
        @Flag(help: "One JSON object a line instead of a table.") var json = false
        @OptionGroup var personal: PersonalDataOption

        func validate() throws { _ = try filter.filter() }

        func run() async throws {
            let catalog = try options.loadCatalog()
            let listings = try await withLog(options) { log in
                try await DeadLetterOffice(log: log, catalog: catalog).list(try filter.filter(), includeHandled: all)
            }
            if json {
                for listing in listings { print(DeadLetterText.json(listing, show: personal.show)) }
                return
            }
            var header = ["ID", "TIME", "CODE", "TOPIC", "REFUSED BY"]
            if all { header.append("STATE") }
            header.append("REASON")
            let rows = listings.map { listing -> [String] in
                let letter = listing.letter
                var row = [
                    letter.id.description, Timestamp.format(letter.time), letter.code, letter.originalTopic ?? "-",
                    letter.refusedBy,
                ]
                if all { row.append(listing.state) }
                row.append(DeadLetterText.oneLine(DeadLetterText.text(letter.reason, show: personal.show), limit: 100))
                return row
            }
            print(Table.render(header: header, rows: rows))
            print("\(listings.count) dead letter(s)" + (all ? "" : " open"))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one dead letter: its original bytes, every dl_* header, the other headers, its state.")
        @OptionGroup var options: BusOptions
        @Argument(help: "The dead letter's id, TOPIC/PARTITION/OFFSET (as dlq list prints it).") var id: String
        @Flag(help: "One JSON object instead of text.") var json = false
        @Flag(help: "Write only the original bytes, exactly, to standard output (to mend them and publish again; needs --show-personal-data).")
        var raw = false
        @OptionGroup var personal: PersonalDataOption

        func validate() throws {
            _ = try DeadLetterIDs.parse([id])
            if json && raw { throw ValidationError("give --json or --raw, not both") }
            if raw && !personal.show {
                throw ValidationError(
                    "--raw writes the original bytes, personal data included: add --show-personal-data to confirm you may see them")
            }
        }

        func run() async throws {
            let catalog = try options.loadCatalog()
            let id = try DeadLetterIDs.parse([self.id])[0]
            let listing = try await DeadLetterIDs.mapErrors {
                try await withLog(options) { log in try await DeadLetterOffice(log: log, catalog: catalog).show(id) }
            }
            if raw {
                FileHandle.standardOutput.write(listing.letter.record.value)
            } else if json {
                print(DeadLetterText.json(listing, withValue: true, show: personal.show))
            } else {
                print(DeadLetterText.describe(listing, show: personal.show))
            }
        }
    }

    struct Redrive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send dead letters back to their original topic through validation.",
            discussion: """
                Give the ids, or filter options, or --all (every open dead letter). Each is validated \
                with the catalog as it is now: what passes goes to its topic with its original \
                id and bytes; what fails again comes back to the dead-letter topic with the new \
                reason (dl_redrive_of names the old one). Either way the old one is marked \
                redriven and is not sent again by a later redrive. Exits 65 when any came back.
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var filter: DeadLetterFilterOptions
        @OptionGroup var operatorKey: OperatorKeyOptions
        @Argument(help: "The ids of the dead letters (TOPIC/PARTITION/OFFSET).") var ids: [String] = []
        @Flag(help: "Every open dead letter.") var all = false

        func validate() throws {
            let filter = try filter.filter()
            let ways = [!ids.isEmpty, !filter.isEmpty, all].filter { $0 }.count
            if ways != 1 { throw ValidationError("give the dead letters' ids, or filter options, or --all (one of them)") }
            _ = try DeadLetterIDs.parse(ids)
        }

        func run() async throws {
            let catalog = try options.loadCatalog()
            let filter = try filter.filter()
            let selection: DeadLetterRequest.Selection =
                all ? .all : ids.isEmpty ? .matching(filter) : .ids(try DeadLetterIDs.parse(ids))
            let (principal, audit) = try await operatorKey.authorize(.deadLetters)
            let request = DeadLetterRequest(.redrive, selection, by: principal.name)
            let report = try await DeadLetterIDs.mapErrors {
                try await withLog(options) { log in try await DeadLetterOffice(log: log, catalog: catalog).handle(request) }
            }
            try await audit.recordDeadLetters(by: principal, report)
            for outcome in report.outcomes { print(DeadLetterText.text(DeadLetterText.line(outcome), show: false)) }
            print(
                "\(report.outcomes.count) dead letter(s): \(report.published) went through, \(report.deadLetteredAgain) came back with a new reason, \(report.skipped) skipped"
            )
            if report.deadLetteredAgain > 0 {
                throw CommandFailure(
                    .refused,
                    "\(report.deadLetteredAgain) dead letter(s) failed validation again and are back on the dead-letter topic: `onewindow dlq list` shows their new reason")
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mark dead letters as handled without sending them (needs a filter or ids, and a confirmation).",
            discussion: """
                The records stay on the dead-letter topic until its retention removes them (the log \
                is append-only); a marker on deadletter.record.handled hides them from dlq list and \
                keeps them from being redriven. Without --yes the command lists what it would purge \
                and asks you to type 'yes' (on a terminal; elsewhere it refuses).
                """)
        @OptionGroup var options: BusOptions
        @OptionGroup var filter: DeadLetterFilterOptions
        @OptionGroup var operatorKey: OperatorKeyOptions
        @Argument(help: "The ids of the dead letters (TOPIC/PARTITION/OFFSET).") var ids: [String] = []
        @Flag(help: "Purge without asking.") var yes = false

        func validate() throws {
            let filter = try filter.filter()
            if ids.isEmpty && filter.isEmpty {
                throw ValidationError(
                    "purge needs a filter (--topic, --code, --refused-by, --since, --until) or the dead letters' ids; it does not purge every dead letter at once")
            }
            if !ids.isEmpty && !filter.isEmpty { throw ValidationError("give the ids or filter options, not both") }
            _ = try DeadLetterIDs.parse(ids)
        }

        func run() async throws {
            let catalog = try options.loadCatalog()
            let filter = try filter.filter()
            var selection: DeadLetterRequest.Selection =
                ids.isEmpty ? .matching(filter) : .ids(try DeadLetterIDs.parse(ids))
            let (principal, audit) = try await operatorKey.authorize(.deadLetters)
            let by = principal.name
            let report = try await DeadLetterIDs.mapErrors {
                try await withLog(options) { log -> DeadLetterReport? in
                    let office = DeadLetterOffice(log: log, catalog: catalog)
                    if !yes {
                        guard isatty(STDIN_FILENO) == 1 else {
                            throw CommandFailure(
                                .usage, "purge asks for a confirmation: add --yes (standard input is not a terminal to type it)")
                        }
                        let chosen: [DeadLetterID]
                        switch selection {
                        case .ids(let ids): chosen = ids
                        default: chosen = try await office.list(filter).map(\.letter.id)
                        }
                        if chosen.isEmpty { return nil }
                        printError("this purges \(chosen.count) dead letter(s):")
                        for id in chosen.prefix(10) { printError("  \(id)") }
                        if chosen.count > 10 { printError("  … and \(chosen.count - 10) more") }
                        FileHandle.standardError.write(Data("type yes to purge them: ".utf8))
                        guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
                            throw CommandFailure(.usage, "not confirmed; nothing was purged")
                        }
                        // Exactly those shown, not what arrived meanwhile.
                        selection = .ids(chosen)
                    }
                    return try await office.handle(DeadLetterRequest(.purge, selection, by: by))
                }
            }
            guard let report else {
                print("0 dead letter(s) purged: none open matches")
                return
            }
            try await audit.recordDeadLetters(by: principal, report)
            for outcome in report.outcomes { print(DeadLetterText.line(outcome)) }
            print("\(report.purged) dead letter(s) purged, \(report.skipped) skipped")
        }
    }
}

/// The filter options of `dlq list`, `redrive` and `purge`.
struct DeadLetterFilterOptions: ParsableArguments {
    @Option(name: .customLong("topic"), help: "The original topic (dl_original_topic; repeatable).") var topics: [String] = []
    @Option(name: .customLong("code"), help: "The reason code (dl_code, e.g. schema-violation; repeatable).")
    var codes: [String] = []
    @Option(name: .customLong("refused-by"), help: "The refusing component (dl_refused_by; repeatable).")
    var refusedBy: [String] = []
    @Option(help: "Refused at or after this time (RFC 3339, e.g. 2025-03-01T00:00:00+08:00).") var since: String?
    @Option(help: "Refused before this time (RFC 3339).") var until: String?

    /// The filter, or a usage error naming the option that is wrong.
    func filter() throws -> DeadLetterFilter {
        let known = ValidationFailure.Code.allCases.map(\.rawValue)
        for code in codes where !known.contains(code) {
            throw ValidationError("--code \(code) is not a reason code; the codes are: \(known.joined(separator: ", "))")
        }
        func time(_ text: String?, _ option: String) throws -> Date? {
            guard let text else { return nil }
            guard let date = Timestamp.parse(text) else {
                throw ValidationError("--\(option) \(text) is not an RFC 3339 time (e.g. 2025-03-01T00:00:00+08:00)")
            }
            return date
        }
        let filter = DeadLetterFilter(
            originalTopics: topics, codes: codes, refusedBy: refusedBy, since: try time(since, "since"),
            until: try time(until, "until"))
        if let since = filter.since, let until = filter.until, until <= since {
            throw ValidationError("--until must be after --since")
        }
        return filter
    }
}

/// Whether personal data is printed as it is (see ``PersonalData``; masked by default).
struct PersonalDataOption: ParsableArguments {
    @Flag(
        name: .customLong("show-personal-data"),
        help: "Print resident ID numbers, names and mobile numbers unmasked (masked by default: 440602********1234, 王**, 138****5678).")
    var show = false
}

enum DeadLetterIDs {
    static func parse(_ texts: [String]) throws -> [DeadLetterID] {
        try texts.map { text in
            guard let id = DeadLetterID(text) else {
                throw ValidationError("\(text) is not a dead letter's id: write TOPIC/PARTITION/OFFSET, e.g. deadletter.record.refused/0/42")
            }
            return id
        }
    }

    /// Runs `body`, turning a ``DeadLetterError`` into the command's failure with its status.
    static func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DeadLetterError {
            switch error.code {
            case .notFound, .markerTopicMissing: throw CommandFailure(.notFound, error.message)
            case .filterRequired: throw CommandFailure(.usage, error.message)
            }
        }
    }
}

/// How `dlq` prints dead letters.
enum DeadLetterText {
    /// The text on one line, cut to `limit` characters with an ellipsis.
    static func oneLine(_ text: String, limit: Int) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count <= limit ? flat : String(flat.prefix(limit - 1)) + "…"
    }

    /// Text as it is with `show`, else with its personal data masked (``PersonalData/maskText(_:)``).
    static func text(_ text: String, show: Bool) -> String { show ? text : PersonalData.maskText(text) }

    /// A header's value as text (masked unless `show`), or `base64:` and its bytes when it is not
    /// UTF-8 (only with `show`: bytes that are not text cannot be masked).
    static func headerValue(_ header: LogHeader, show: Bool) -> String {
        if let value = header.text { return text(value, show: show) }
        return show ? "base64:" + header.value.base64EncodedString() : "(\(header.value.count) bytes, not UTF-8; --show-personal-data shows them)"
    }

    /// `show`'s text: the original bytes and every header.
    static func describe(_ listing: DeadLetterListing, show: Bool) -> String {
        let letter = listing.letter
        let record = letter.record
        var lines = [
            "id:          \(letter.id)",
            "state:       \(state(listing))",
            "appended:    \(Timestamp.format(record.timestamp))",
            "key:         \(record.key.map { headerValue(LogHeader(name: "key", value: $0), show: show) } ?? "(none)")",
        ]
        lines.append("dl_* headers:")
        for header in letter.deadLetterHeaders { lines.append("  \(header.name): \(headerValue(header, show: show))") }
        lines.append("other headers:")
        if letter.originalHeaders.isEmpty { lines.append("  (none)") }
        for header in letter.originalHeaders { lines.append("  \(header.name): \(headerValue(header, show: show))") }
        if String(data: record.value, encoding: .utf8) != nil, !show {
            lines.append(
                "value (\(record.value.count) bytes, shown as UTF-8 text with personal data masked; --show-personal-data shows it as it is):")
            lines.append(String(decoding: PersonalData.maskBody(record.value), as: UTF8.self))
        } else if let text = String(data: record.value, encoding: .utf8) {
            lines.append("value (\(record.value.count) bytes, shown as UTF-8 text):")
            lines.append(text)
        } else if !show {
            lines.append(
                "value (\(record.value.count) bytes, not UTF-8, so it cannot be masked; --show-personal-data shows it as base64)")
        } else {
            lines.append("value (\(record.value.count) bytes, not UTF-8, shown as base64):")
            lines.append(record.value.base64EncodedString())
        }
        return lines.joined(separator: "\n")
    }

    private static func state(_ listing: DeadLetterListing) -> String {
        guard let marker = listing.marker else { return "open" }
        var text = "\(marker.summary) at \(Timestamp.format(marker.at)) by \(marker.by)"
        if let topic = marker.topic, marker.result == .published { text += " to \(topic)" }
        if let reason = marker.reason { text += ": \(reason)" }
        return text
    }

    /// One dead letter as a JSON object: its fields, its state, and with `withValue` its bytes
    /// (`value` as text with `valueEncoding` `utf-8`, else base64 with `valueEncoding` `base64`)
    /// and every header.
    static func json(_ listing: DeadLetterListing, withValue: Bool = false, show: Bool) -> String {
        let letter = listing.letter
        let record = letter.record
        var object: JSONObject = [
            "id": .string(letter.id.description), "topic": .string(letter.id.topic),
            "partition": .integer(Int64(letter.id.partition)), "offset": .integer(letter.id.offset),
            "time": .string(Timestamp.format(letter.time)), "code": .string(letter.code),
            "reason": .string(text(letter.reason, show: show)), "originalTopic": letter.originalTopic.map(JSONValue.string) ?? .null,
            "refusedBy": .string(letter.refusedBy), "eventId": letter.eventId.map(JSONValue.string) ?? .null,
            "eventType": letter.eventType.map(JSONValue.string) ?? .null,
            "key": record.keyString.map { .string(text($0, show: show)) } ?? .null, "state": .string(listing.state),
        ]
        if let redriveOf = letter.redriveOf { object["redriveOf"] = .string(redriveOf.description) }
        if let marker = listing.marker { object["handled"] = marker.body }
        if withValue {
            if String(data: record.value, encoding: .utf8) != nil, !show {
                object["value"] = .string(String(decoding: PersonalData.maskBody(record.value), as: UTF8.self))
                object["valueEncoding"] = .string("utf-8-masked")
            } else if let text = String(data: record.value, encoding: .utf8) {
                object["value"] = .string(text)
                object["valueEncoding"] = .string("utf-8")
            } else if !show {
                object["value"] = .null
                object["valueEncoding"] = .string("withheld")
            } else {
                object["value"] = .string(record.value.base64EncodedString())
                object["valueEncoding"] = .string("base64")
            }
            object["headers"] = .array(
                record.headers.map { .object(["name": .string($0.name), "value": .string(headerValue($0, show: show))]) })
        }
        return String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
    }

    /// One line of a redrive's or purge's report.
    static func line(_ outcome: DeadLetterOutcome) -> String {
        switch outcome.result {
        case .published(let position): "\(outcome.id): went through to \(position)"
        case .deadLetteredAgain(let id, let reason): "\(outcome.id): came back as \(id): \(reason)"
        case .purged: "\(outcome.id): purged"
        case .skipped(let why): "\(outcome.id): skipped: \(why)"
        }
    }
}
