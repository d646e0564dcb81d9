// SSE fan-out (issue 11): one embedded log, the subscription hub behind a Hummingbird server on
// loopback serving the same `ServerSentEventStream` the gateway serves, and N SSE clients in
// threads of their own on plain sockets (HTTP/1.1, chunked bodies decoded, SSE lines parsed).
import EmbeddedLog
import EventLog
import EventModel
import Foundation
import Histogram
import Hummingbird
import Subscriptions
import Synchronization
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

struct FanOutResult {
    let subscribers: Int
    let burst: Int
    let burstSeconds: Double
    /// Events delivered to all subscribers together per second, during the burst.
    let deliveredPerSecond: Double
    /// CPU seconds of the whole process per delivered event during the burst, and of the SSE
    /// clients' threads alone (the rest is the server: the log, the hub, HTTP).
    let burstCPUPerEvent: Double
    let burstClientCPUPerEvent: Double
    let rate: Int
    let latencyEvents: Int
    /// Deliveries per second during the fixed-rate phase (from its first append to the last
    /// delivery), and how long after the last append the last subscriber had everything: a
    /// drain of more than a few tens of milliseconds means the rate was more than the system
    /// delivers, and the latencies are a backlog's.
    let latencyDeliveredPerSecond: Double
    let drainMilliseconds: Double
    let latencyCPUPerEvent: Double
    let latencyClientCPUPerEvent: Double
    let p50: Double
    let p99: Double
    let max: Double
    /// The 1-minute load average at the start and the end of the run.
    let loadBefore: Double
    let loadAfter: Double
}

/// Wall-clock microseconds (the appender and the clients share the process, so the same clock).
func nowMicros() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
}

/// The machine's 1-minute load average.
func loadAverage() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return 0 }
    return Double(text.split(separator: " ").first ?? "") ?? 0
}

/// What every client has received: counts, latencies in microseconds (up to a minute), and the
/// CPU time each client's thread has used so far.
final class FanOutTally: Sendable {
    struct State {
        var connected = 0
        var received: [Int]
        var clientCPU: [Double]
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
    }
    let state: Mutex<State>
    init(clients: Int) {
        state = Mutex(State(received: Array(repeating: 0, count: clients), clientCPU: Array(repeating: 0, count: clients)))
    }

    var clientCPU: Double { state.withLock { $0.clientCPU.reduce(0, +) } }
}

/// One SSE client on a blocking socket, in a thread of its own: decodes the chunked body in bulk
/// and finds lines with `memchr`, all in local variables (a first version kept its parse state in
/// the object's properties and parsed byte by byte; Swift's exclusivity checks on those properties
/// took about a third of the benchmark's CPU, competing with the server it measures).
final class SSEClient: Sendable {
    let index: Int
    let port: Int
    let tally: FanOutTally

    init(index: Int, port: Int, tally: FanOutTally) {
        self.index = index
        self.port = port
        self.tally = tally
    }

    func start() {
        let thread = Thread { self.run() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func run() {
        let fd: Int32
        do { fd = try connectLoopback(port: port, receiveTimeout: 0) } catch { fatalError("\(error)") }
        let request = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var input: [UInt8] = []  // received bytes not decoded yet (headers, a chunk's size line)
        var body: [UInt8] = []  // the decoded body not yet split into lines
        var inBody = false
        var remaining = 0  // bytes left in the current chunk
        var skip = 0  // the CRLF after a chunk
        var latencies: [UInt64] = []
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            let now = nowMicros()
            input.append(contentsOf: buffer[0..<n])
            var position = 0
            if !inBody {
                guard let end = Self.find([13, 10, 13, 10], in: input) else { continue }
                inBody = true
                tally.state.withLock { $0.connected += 1 }
                position = end + 4
            }
            // Chunked transfer decoding: the size line, that many bytes, then CRLF.
            while position < input.count {
                if skip > 0 {
                    let take = min(skip, input.count - position)
                    skip -= take
                    position += take
                } else if remaining > 0 {
                    let take = min(remaining, input.count - position)
                    body.append(contentsOf: input[position..<(position + take)])
                    remaining -= take
                    position += take
                    if remaining == 0 { skip = 2 }
                } else {
                    guard let lineEnd = input[position...].firstIndex(of: 10) else { break }
                    var size = 0
                    for byte in input[position..<lineEnd] {
                        guard let digit = Self.hexDigit(byte) else { break }
                        size = size * 16 + digit
                    }
                    remaining = size
                    position = lineEnd + 1
                }
            }
            input.removeFirst(position)
            // SSE lines: each `data: {...}` line is one event, whose body ends with the append time
            // `"t":<microseconds>}`.
            var delivered = 0
            let consumed = body.withUnsafeBufferPointer { bytes -> Int in
                guard let base = bytes.baseAddress else { return 0 }
                var start = 0
                while start < bytes.count {
                    guard let found = memchr(base + start, 10, bytes.count - start) else { break }
                    let end = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(found))
                    if end - start > 6, bytes[start] == UInt8(ascii: "d"), bytes[start + 4] == UInt8(ascii: ":") {
                        delivered += 1
                        if let t = Self.appendTime(bytes, start, end) { latencies.append(now > t ? now - t : 1) }
                    }
                    start = end + 1
                }
                return start
            }
            body.removeFirst(consumed)
            if delivered > 0 {
                let cpu = cpuSeconds(CLOCK_THREAD_CPUTIME_ID)
                tally.state.withLock { state in
                    state.received[index] += delivered
                    state.clientCPU[index] = cpu
                    for latency in latencies { _ = state.histogram.record(max(1, latency)) }
                }
                latencies.removeAll(keepingCapacity: true)
            }
        }
        close(fd)
    }

    /// The number after the last `"t":` of a line, looked for from its end.
    private static func appendTime(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> UInt64? {
        var index = end - 1
        while index > start + 3 {
            if bytes[index] == UInt8(ascii: ":"), bytes[index - 1] == UInt8(ascii: "\""), bytes[index - 2] == UInt8(ascii: "t"),
                bytes[index - 3] == UInt8(ascii: "\"")
            {
                var value: UInt64 = 0
                var digit = index + 1
                while digit < end, bytes[digit] >= 48, bytes[digit] <= 57 {
                    value = value * 10 + UInt64(bytes[digit] - 48)
                    digit += 1
                }
                return value
            }
            index -= 1
        }
        return nil
    }

    private static func hexDigit(_ byte: UInt8) -> Int? {
        switch byte {
        case 48...57: Int(byte - 48)
        case 97...102: Int(byte - 87)
        case 65...70: Int(byte - 55)
        default: nil
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

/// ~500-byte events whose body carries the append time `t` (microseconds).
private func fanOutRecords(topic: String, first: Int, count: Int) -> [OutgoingRecord] {
    let t = nowMicros()
    return (first..<(first + count)).map { index in
        let body = """
            {"applicationId":"RA-2025-\(index)","service":"restaurant-opening","department":"food-safety",\
            "item":"food-business-licence","dueBy":"2025-03-14","applicant":{"name":"陈美玲",\
            "residentId":"440604198803150027","mobile":"13802761234"},"note":"Lot \(index), Chancheng district, Foshan",\
            "t":\(t)}
            """
        let event = Event(
            id: "fan-\(index)", type: "approval.requested", source: "/onewindow/orchestrator",
            subject: "RA-2025-\(index)", data: Data(body.utf8))
        return CloudEventsBinding.record(for: event, topic: topic)
    }
}

/// `subscribers` SSE clients on one topic of 6 partitions: a burst of `burst` events appended as
/// fast as the log takes them (delivered events/s in total, until every client has them all),
/// then `rate` events/s for `seconds` (p50/p99/max from append to a client's parse of the event).
func benchSSEFanOut(directory: URL, subscribers: Int, burst: Int, rate: Int, seconds: Int) async throws -> FanOutResult {
    let log = try EmbeddedLog(path: directory.appendingPathComponent("fanout.sqlite").path)
    let topic = "bench.fanout.events"
    try await log.createTopics([TopicSpec(name: topic, partitions: 6)])
    let hub = SubscriptionHub(log: log)
    let router = Router()
    router.get("/events") { _, _ -> Response in
        let subscription = try await hub.open(
            SubscriptionRequest(selection: .topics([topic]), group: nil, start: .latest, redacted: true))
        let stream = ServerSentEventStream(subscription, keepAlive: .seconds(5))
        return Response(
            status: .ok,
            headers: [.contentType: ServerSentEvents.contentType, .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                for try await chunk in stream { try await writer.write(ByteBuffer(bytes: chunk)) }
                try await writer.finish(nil)
            })
    }
    let bound = Mutex<Int?>(nil)
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in bound.withLock { $0 = channel.localAddress?.port } })
    let server = Task { try await app.runService(gracefulShutdownSignals: []) }
    defer { server.cancel() }
    var port: Int?
    while port == nil {
        try await Task.sleep(for: .milliseconds(20))
        port = bound.withLock { $0 }
    }

    let tally = FanOutTally(clients: subscribers)
    for index in 0..<subscribers { SSEClient(index: index, port: port!, tally: tally).start() }
    while tally.state.withLock({ $0.connected }) < subscribers { try await Task.sleep(for: .milliseconds(20)) }
    try await Task.sleep(for: .milliseconds(200))  // every subscription open at the high-water mark

    let loadBefore = loadAverage()
    let clock = ContinuousClock()
    let started = clock.now
    let burstCPU = (process: cpuSeconds(CLOCK_PROCESS_CPUTIME_ID), clients: tally.clientCPU)
    for first in stride(from: 0, to: burst, by: 500) {
        _ = try await log.append(fanOutRecords(topic: topic, first: first, count: min(500, burst - first)))
    }
    while tally.state.withLock({ $0.received.min()! }) < burst { try await Task.sleep(for: .milliseconds(2)) }
    let burstSeconds = (clock.now - started).seconds
    let burstDeliveries = Double(subscribers * burst)
    let burstCPUPerEvent = (cpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - burstCPU.process) / burstDeliveries
    let burstClientCPUPerEvent = (tally.clientCPU - burstCPU.clients) / burstDeliveries
    tally.state.withLock { $0.histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000) }

    // The fixed rate: what is due every 5 ms is appended then, never waiting for delivery. Every
    // event's time from its append to each subscriber's parse of it goes into the histogram; the
    // drain after the last append says whether the rate was one the system keeps up with.
    let total = rate * seconds
    let tick = Duration.milliseconds(5)
    let rateStart = clock.now
    let rateCPU = (process: cpuSeconds(CLOCK_PROCESS_CPUTIME_ID), clients: tally.clientCPU)
    var appended = 0
    var ticks = 0
    while appended < total {
        ticks += 1
        let due = min(total, Int((Double(ticks) * tick.seconds * Double(rate)).rounded()))
        if due > appended {
            _ = try await log.append(fanOutRecords(topic: topic, first: burst + appended, count: due - appended))
            appended = due
        }
        try await Task.sleep(until: rateStart.advanced(by: tick * ticks), clock: clock)
    }
    let lastAppend = clock.now
    let deadline = clock.now.advanced(by: .seconds(60))
    while tally.state.withLock({ $0.received.min()! }) < burst + total, clock.now < deadline {
        try await Task.sleep(for: .milliseconds(1))
    }
    let drained = clock.now
    let rateDeliveries = Double(tally.state.withLock { $0.received.reduce(0, +) } - subscribers * burst)
    let latencyCPUPerEvent = (cpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - rateCPU.process) / rateDeliveries
    let latencyClientCPUPerEvent = (tally.clientCPU - rateCPU.clients) / rateDeliveries
    let histogram = tally.state.withLock { $0.histogram }
    let loadAfter = loadAverage()
    await log.close()
    return FanOutResult(
        subscribers: subscribers, burst: burst, burstSeconds: burstSeconds,
        deliveredPerSecond: burstDeliveries / burstSeconds, burstCPUPerEvent: burstCPUPerEvent,
        burstClientCPUPerEvent: burstClientCPUPerEvent, rate: rate,
        latencyEvents: Int(histogram.totalCount),
        latencyDeliveredPerSecond: rateDeliveries / (drained - rateStart).seconds,
        drainMilliseconds: (drained - lastAppend).seconds * 1000,
        latencyCPUPerEvent: latencyCPUPerEvent, latencyClientCPUPerEvent: latencyClientCPUPerEvent,
        p50: Double(histogram.valueAtPercentile(50)) / 1000, p99: Double(histogram.valueAtPercentile(99)) / 1000,
        max: Double(histogram.max) / 1000, loadBefore: loadBefore, loadAfter: loadAfter)
}
