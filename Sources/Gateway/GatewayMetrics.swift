import CivilTime
import EventLog
import EventSchemas
import Foundation
import Prometheus
import Synchronization

/// The gateway's Prometheus metrics, in a registry of its own (not swift-metrics' global one, so
/// that two gateways in one test process do not share counters).
///
/// Counted as requests come: `onewindow_gateway_request_duration_seconds{operation,status}`,
/// `onewindow_gateway_refusals_total{operation,code}`, `onewindow_gateway_submissions_total{workflow,outcome}`.
/// Read from the bus and the gateway's store at each scrape of `/metrics`:
/// - `onewindow_topic_events_in{topic}`: records ever appended to the topic (the sum of its
///   partitions' high-water marks);
/// - `onewindow_topic_events_out{topic,group}`: records the group has consumed and committed;
/// - `onewindow_consumer_lag{group,topic}`: records the group has still to read;
/// - `onewindow_dead_letters`: records on the dead-letter topic;
/// - `onewindow_applications_open`, `onewindow_steps_overdue`: from the progress the gateway follows
///   (a step is overdue when it is requested and its due date is before today, China time);
/// - `onewindow_gateway_bus_up`: 1 when the bus answered this scrape.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .seconds(2.5), .seconds(5),
    ]

    /// The request histograms and submission counters made so far, by their labels: asking the
    /// registry at every request (its descriptor checks, label strings and lock) cost more than
    /// recording.
    private let made = Mutex<(histograms: [String: DurationHistogram], counters: [String: Counter])>(([:], [:]))

    func request(operation: String, status: Int, duration: Duration) {
        let name = "\(operation)\u{1F}\(status)"
        if let histogram = made.withLock({ $0.histograms[name] }) {
            histogram.record(duration)
            return
        }
        let histogram = registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                namespace: "onewindow", subsystem: "gateway", metricName: "request_duration", unitName: "seconds",
                helpText: "Time from a request's arrival to its response, by operation and status."),
            labels: [("operation", operation), ("status", String(status))], buckets: Self.latencyBuckets)
        made.withLock { $0.histograms[name] = histogram }
        histogram.record(duration)
    }

    func refusal(operation: String, code: String) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "onewindow", subsystem: "gateway", metricName: "refusals", unitName: "total",
                helpText: "Requests refused by access control (401, 403), by operation and refusal code."),
            labels: [("operation", operation), ("code", code)]
        ).increment()
    }

    func submission(workflow: String, outcome: String) {
        let name = "\(workflow)\u{1F}\(outcome)"
        if let counter = made.withLock({ $0.counters[name] }) {
            counter.increment()
            return
        }
        let counter = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "onewindow", subsystem: "gateway", metricName: "submissions", unitName: "total",
                helpText: "Applications submitted at the front desk, by workflow and outcome (accepted, invalid)."),
            labels: [("workflow", workflow), ("outcome", outcome)])
        made.withLock { $0.counters[name] = counter }
        counter.increment()
    }

    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(
            descriptor: MetricNameDescriptor(namespace: "onewindow", metricName: name, unitName: "", helpText: help),
            labels: labels)
    }

    /// Reads the bus and the store into the gauges, then returns the whole registry as Prometheus
    /// text. A bus that does not answer sets `onewindow_gateway_bus_up` to 0 and leaves the bus
    /// gauges at their last values.
    func scrape(log: any EventLog, store: ProgressStore, deadLetterTopic: String, now: Date) async -> String {
        do {
            let topics = try await log.listTopics()
            let described = try await log.describeTopics(topics)
            for description in described {
                let appended = description.partitions.reduce(Int64(0)) { $0 + $1.high }
                gauge("topic_events_in", "Records ever appended to the topic.", [("topic", description.name)])
                    .set(Double(appended))
                if description.name == deadLetterTopic {
                    gauge("dead_letters", "Records on the dead-letter topic.").set(Double(appended))
                }
            }
            for group in try await log.listGroups() {
                let committed = try await log.committedOffsets(group: group, topics: topics)
                let groupTopics = Set(committed.keys.map(\.topic)).sorted()
                for topic in groupTopics {
                    let consumed = committed.filter { $0.key.topic == topic }.values.reduce(0, +)
                    gauge(
                        "topic_events_out", "Records of the topic the group has consumed and committed.",
                        [("topic", topic), ("group", group)]
                    ).set(Double(consumed))
                }
                for lag in try await log.lag(group: group, topics: groupTopics).reduce(
                    into: [String: Int64](), { $0[$1.partition.topic, default: 0] += $1.lag })
                {
                    gauge("consumer_lag", "Records the group has still to read.", [("group", group), ("topic", lag.key)])
                        .set(Double(lag.value))
                }
            }
            gauge("gateway_bus_up", "1 when the bus answered the last scrape.").set(1.0)
        } catch {
            gauge("gateway_bus_up", "1 when the bus answered the last scrape.").set(0.0)
        }
        if let open = try? await store.openApplications() {
            gauge("applications_open", "Applications submitted or in progress.").set(Double(open.count))
            let today = ChinaTime.date(at: now)
            let overdue = open.reduce(0) { $0 + ProgressBody.overdueSteps($1.progress, today: today) }
            gauge("steps_overdue", "Requested steps whose due date has passed (China time).").set(Double(overdue))
        }
        return registry.emitToString()
    }
}

/// Reading the body of `application.progress.updated` (named apart from Foundation's `Progress`).
enum ProgressBody {
    /// Whether a step of a progress body is overdue on `today`: requested, with a due date before it.
    static func isOverdue(_ step: JSONValue, today: CivilDate) -> Bool {
        guard step[pointer: "/status"]?.stringValue == "requested",
            let due = step[pointer: "/dueBy"]?.stringValue.flatMap(CivilDate.init)
        else { return false }
        return due < today
    }

    static func overdueSteps(_ progress: JSONValue?, today: CivilDate) -> Int {
        guard case .array(let steps)? = progress?[pointer: "/steps"] else { return 0 }
        return steps.filter { isOverdue($0, today: today) }.count
    }
}
