import AccessControl
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import Gateway
import Logging
import ServiceLifecycle
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Subscriptions over real HTTP: SSE resumed from Last-Event-ID across a gateway restart, long
/// poll with commit, and a topic not granted.
@Suite("The gateway's subscriptions over HTTP", .serialized)
struct SubscriptionRoutesTests {
    static let topic = "household.birth.registered"

    /// The real key store and policy with two downstream keys granted the household topics:
    /// `hub-key` without the personal-data grant, `registry-hub-key` with it; anything else is
    /// refused. Issued once per folder (a restarted gateway keeps it).
    static func readers(in directory: URL) async throws -> IssuedKeys {
        try await IssuedKeys.issue(
            in: directory,
            principals: [
                "hub-key": Principal(name: "datahub", kind: .downstream, grants: [.read(topics: "household.*")]),
                "registry-hub-key": Principal(
                    name: "registry-datahub", kind: .downstream, grants: [.read(topics: "household.*"), .personalData]),
            ],
            revoking: [])
    }

    /// A gateway process on the bus file in `directory`; `stop()` ends it as a restart would.
    final class Running: Sendable {
        let log: any EventLog
        let port: Int
        let group: ServiceGroup
        let task: Task<Void, any Error>

        init(directory: URL, access: any AccessDeciding) async throws {
            log = try EmbeddedLog(path: directory.appendingPathComponent("bus.sqlite").path)
            _ = try await log.createTopics(Repo.catalog.topicSpecs)
            var logger = Logger(label: "gateway-test")
            logger.logLevel = .warning
            let gateway = try Gateway(
                log: log, catalog: Repo.catalog, rules: Repo.rules,
                storePath: directory.appendingPathComponent("gateway.sqlite").path, viewPath: nil, access: access,
                bus: "embedded:test", logger: logger)
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            group = ServiceGroup(services: try gateway.services(host: "127.0.0.1", port: 0) { continuation.yield($0) }, logger: logger)
            let group = self.group
            task = Task { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw SupportError("the gateway did not start") }
            self.port = port
        }

        func stop() async {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
            await log.close()
        }

        func append(_ range: Range<Int>) async throws {
            for index in range {
                let event = Event(
                    id: "birth-\(index)", type: Self.type, source: "/tests", subject: "key-\(index % 7)",
                    data: Data(#"{"n":\#(index)}"#.utf8))
                _ = try await log.append([CloudEventsBinding.record(for: event, topic: SubscriptionRoutesTests.topic)])
            }
        }
        static let type = "household.birth.registered"
    }

    @Test(
        "SSE: a gateway's graceful shutdown ends open streams at once; resuming from Last-Event-ID after the restart neither skips nor repeats",
        .timeLimit(.minutes(1)))
    func sseAcrossRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-subs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let readers = try await Self.readers(in: directory)
        var gateway = try await Running(directory: directory, access: readers)
        try await gateway.append(0..<12)
        let path = "/subscriptions/datahub-sse/events?topics=\(Self.topic)"
        // A client that left (read 5 events and closed) and one still reading when the gateway
        // stops: neither holds the shutdown up, and the one reading sees its stream end.
        let left = try await SSERead.read(port: gateway.port, path: path, lastEventID: nil, events: 5)
        #expect(left.contentType.hasPrefix("text/event-stream"))
        let (reached, tell) = AsyncStream<Void>.makeStream()
        let port = gateway.port
        let reading = Task { try await SSERead.read(port: port, path: path, lastEventID: nil, events: 12, untilEnd: true) { tell.yield() } }
        for await _ in reached { break }
        let stopping = ContinuousClock.now
        await gateway.stop()
        let stopped = ContinuousClock.now - stopping
        let first = try await reading.value
        #expect(stopped < .seconds(4), "the graceful shutdown took \(stopped) with two SSE clients")
        #expect(first.ended, "the open stream ended with the response's last chunk")
        #expect(first.comments.contains { $0.contains("reconnect with Last-Event-ID") }, "\(first.comments)")
        #expect(Set(first.eventIds) == Set((0..<12).map { "birth-\($0)" }) && first.eventIds.count == 12)

        // The reading client reconnects with the last id it got; so does the one that left.
        gateway = try await Running(directory: directory, access: readers)
        try await gateway.append(12..<15)
        let rest = try await SSERead.read(port: gateway.port, path: path, lastEventID: first.ids.last!, events: 3)
        #expect(Set(first.eventIds + rest.eventIds) == Set((0..<15).map { "birth-\($0)" }), "no gap")
        #expect(first.eventIds.count + rest.eventIds.count == 15, "no repeat")
        let restOfLeft = try await SSERead.read(port: gateway.port, path: path, lastEventID: left.ids.last!, events: 10)
        let all = left.eventIds + restOfLeft.eventIds
        #expect(Set(all) == Set((0..<15).map { "birth-\($0)" }), "every event")
        #expect(all.count == 15, "none twice")
        let stopping2 = ContinuousClock.now
        await gateway.stop()
        #expect(ContinuousClock.now - stopping2 < .seconds(4))
    }

    @Test("Subscribers see personal data masked unless their key holds personal-data; SSE and long poll", .timeLimit(.minutes(1)))
    func personalDataMasked() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-subs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let readers = try await Self.readers(in: directory)
        let gateway = try await Running(directory: directory, access: readers)
        let child = "440604202601150019", mother = "440604199308220247"
        let body = #"""
            {"child":{"residentId":"\#(child)","name":"陈小明","gender":"male","birthDate":"2026-01-15"},
             "mother":{"name":"欧阳娜","residentId":"\#(mother)"},
             "householdNumber":"440604-0012345","registeredAt":"2026-01-20T09:30:00+08:00","registrationOffice":"Zumiao police station"}
            """#
        let event = Event(
            id: "birth-private", type: Running.type, source: "/departments/household-registry", subject: child,
            data: Data(body.utf8))
        _ = try await gateway.log.append([CloudEventsBinding.record(for: event, topic: Self.topic)])
        let path = "/subscriptions/privacy/events?topics=\(Self.topic)"
        let masked = try await SSERead.read(port: gateway.port, path: path, key: "hub-key", lastEventID: nil, events: 1)
        let full = try await SSERead.read(port: gateway.port, path: path, key: "registry-hub-key", lastEventID: nil, events: 1)
        let polled = try await Self.json(gateway.port, "GET", "/subscriptions/privacy/batch?topics=\(Self.topic)&wait=2")
        await gateway.stop()

        let published = try JSONValue.parse(Data(body.utf8))
        #expect(full.events.first?[pointer: "/data"] == published, "the personal-data key gets the body as published")
        #expect(full.events.first?[pointer: "/subject"] == .string(child))
        for (what, delivered) in [("SSE", masked.events.first), ("long poll", polled.body[pointer: "/events/0"])] {
            let delivered = try #require(delivered, "\(what): no event")
            #expect(delivered[pointer: "/data/child/residentId"] == .string("440604********0019"), "\(what)")
            #expect(delivered[pointer: "/data/child/name"] == .string("陈**"), "\(what)")
            #expect(delivered[pointer: "/data/mother/name"] == .string("欧**"), "\(what)")
            #expect(delivered[pointer: "/data/mother/residentId"] == .string("440604********0247"), "\(what)")
            #expect(delivered[pointer: "/subject"] == .string("440604********0019"), "\(what)")
            #expect(delivered[pointer: "/data/householdNumber"] == published[pointer: "/householdNumber"], "\(what)")
            let text = delivered.serialized()
            for secret in [child, mother, "陈小明", "欧阳娜"] {
                #expect(!String(decoding: text, as: UTF8.self).contains(secret), "\(what): \(secret) shown")
            }
        }
    }

    @Test("Long poll repeats a batch until it is committed; a topic not granted is refused", .timeLimit(.minutes(1)))
    func longPollAndRefusal() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-subs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let readers = try await Self.readers(in: directory)
        let gateway = try await Running(directory: directory, access: readers)
        try await gateway.append(0..<6)
        let query = "topics=\(Self.topic)&max=4&wait=2"
        let first = try await Self.json(gateway.port, "GET", "/subscriptions/poller/batch?\(query)")
        #expect(first.status == 200)
        let ids = Self.ids(first.body)
        #expect(ids.count == 4)
        let again = try await Self.json(gateway.port, "GET", "/subscriptions/poller/batch?\(query)")
        #expect(Self.ids(again.body) == ids, "not committed: the same batch")
        let cursor = try #require(first.body[pointer: "/cursor"]?.stringValue)
        let committed = try await Self.json(
            gateway.port, "POST", "/subscriptions/poller/commit?topics=\(Self.topic)",
            body: .object(["cursor": .string(cursor)]))
        #expect(committed.status == 200)
        let next = try await Self.json(gateway.port, "GET", "/subscriptions/poller/batch?\(query)")
        #expect(Set(Self.ids(next.body)).isDisjoint(with: ids))
        #expect(Set(Self.ids(next.body) + ids) == Set((0..<6).map { "birth-\($0)" }))

        let refused = try await Self.json(gateway.port, "GET", "/subscriptions/poller/batch?topics=tax.return.filed,\(Self.topic)&wait=0")
        let unknown = try await Self.json(gateway.port, "GET", "/subscriptions/poller/batch?topics=no.such.topic&wait=0")
        let noKey = try await Self.json(gateway.port, "GET", "/subscriptions/poller/events?topics=\(Self.topic)", key: nil)
        let badCursor = try await Self.json(gateway.port, "GET", "/subscriptions/poller/batch?\(query)&cursor=nonsense")
        await gateway.stop()
        #expect(refused.status == 403 || refused.status == 404)
        #expect(unknown.status == 404)
        #expect(noKey.status == 401)
        #expect(badCursor.status == 400)
        #expect(badCursor.body[pointer: "/code"] == .string("bad-cursor"))
    }

    @Test("A topic not granted is refused with 403 and the reason")
    func notGranted() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-subs-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let readers = try await Self.readers(in: directory)
        let gateway = try await Running(directory: directory, access: readers)
        let other = try #require(Repo.catalog.topicSpecs.map(\.name).first { !$0.hasPrefix("household.") })
        let refused = try await Self.json(gateway.port, "GET", "/subscriptions/poller/events?topics=\(other)")
        await gateway.stop()
        #expect(refused.status == 403)
        #expect(refused.body[pointer: "/code"] == .string("not-granted"))
    }

    static func ids(_ body: JSONValue) -> [String] {
        body[pointer: "/events"]?.arrayValue?.compactMap { $0[pointer: "/id"]?.stringValue } ?? []
    }

    static func json(_ port: Int, _ method: String, _ path: String, key: String? = "hub-key", body: JSONValue? = nil)
        async throws -> (status: Int, body: JSONValue)
    {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = body.serialized()
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, (try? JSONValue.parse(data)) ?? .null)
    }
}

/// Reads `events` SSE events from a plain socket (HTTP/1.1, chunked body decoded), then closes;
/// or, `untilEnd`, reads on until the server ends the response (telling `reached` when `events`
/// events are in).
struct SSERead: Sendable {
    var contentType = ""
    var ids: [String] = []
    var eventIds: [String] = []
    /// The events' JSON objects (the `data:` lines).
    var events: [JSONValue] = []
    /// The SSE comments received (`keep-alive`, and the reason a stream ends).
    var comments: [String] = []
    /// Whether the response's last chunk came (the server ended the stream; `untilEnd` only).
    var ended = false

    /// Reads on a thread of its own: a blocking read on the test's task would take one of the
    /// cooperative pool's threads away from the gateway it reads from.
    static func read(
        port: Int, path: String, key: String = "hub-key", lastEventID: String?, events: Int, untilEnd: Bool = false,
        reached: @escaping @Sendable () -> Void = {}
    ) async throws -> SSERead {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        try SSERead(
                            port: port, path: path, key: key, lastEventID: lastEventID, events: events, untilEnd: untilEnd,
                            reached: reached)
                    })
            }.start()
        }
    }

    init(
        port: Int, path: String, key: String = "hub-key", lastEventID: String?, events: Int, untilEnd: Bool = false,
        reached: @Sendable () -> Void = {}
    ) throws {
        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\nAccept: text/event-stream\r\n"
        if let lastEventID { request += "Last-Event-ID: \(lastEventID)\r\n" }
        request += "\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var raw: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var told = false
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0, untilEnd, eventIds.count >= events { return }
            if n <= 0 {
                throw SupportError(
                    "the stream ended after \(eventIds.count) of \(events) events\(n < 0 ? " (no answer for 10 s)" : ""); received: \(String(decoding: raw.prefix(600), as: UTF8.self))")
            }
            raw.append(contentsOf: buffer[0..<n])
            guard let headerEnd = SSERead.find([13, 10, 13, 10], in: raw) else { continue }
            let head = String(decoding: raw[..<headerEnd], as: UTF8.self)
            contentType = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-type:") }
                .map { String($0.dropFirst("content-type:".count)).trimmingCharacters(in: .whitespaces) } ?? ""
            // Chunked: size line, data, CRLF; the SSE text is the data parts joined (in bytes:
            // a String takes CR LF for one character). A chunk of size 0 ends the response.
            var bytes = Array(raw[(headerEnd + 4)...])
            var data: [UInt8] = []
            while let lineEnd = SSERead.find([13, 10], in: bytes),
                let size = Int(String(decoding: bytes[..<lineEnd], as: UTF8.self), radix: 16),
                bytes.count >= lineEnd + 2 + size
            {
                if size == 0 { ended = true }
                data += bytes[(lineEnd + 2)..<(lineEnd + 2 + size)]
                bytes = Array(bytes[min(bytes.count, lineEnd + 2 + size + 2)...])
            }
            let body = String(decoding: data, as: UTF8.self)
            ids = []
            eventIds = []
            self.events = []
            comments = []
            for line in body.split(separator: "\n") {
                if line.hasPrefix("id: ") { ids.append(String(line.dropFirst(4))) }
                if line.hasPrefix(": ") { comments.append(String(line.dropFirst(2))) }
                if line.hasPrefix("data: "), let json = try? JSONValue.parse(Data(line.dropFirst(6).utf8)),
                    let id = json[pointer: "/id"]?.stringValue
                {
                    eventIds.append(id)
                    self.events.append(json)
                }
            }
            if untilEnd {
                if eventIds.count >= events, !told {
                    told = true
                    reached()
                }
                if ended { return }
            } else if eventIds.count >= events {
                ids = Array(ids.prefix(events))
                eventIds = Array(eventIds.prefix(events))
                self.events = Array(self.events.prefix(events))
                return
            }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        outer: for start in 0...(haystack.count - needle.count) {
            for offset in 0..<needle.count where haystack[start + offset] != needle[offset] { continue outer }
            return start
        }
        return nil
    }
}
