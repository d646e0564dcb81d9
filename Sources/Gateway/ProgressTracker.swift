import CivilTime
import EventLog
import EventSchemas
import Foundation
import Logging
import Orchestrator
import Retrying

/// Reads every workflow's application topic and the compacted `application.progress.updated`
/// topic into the gateway's ``ProgressStore``, every partition, from where the store left off
/// (no consumer group: see ``ProgressStore``). Polls every 200 ms once it has caught up.
struct ProgressTracker: Sendable {
    static let progressTopic = "application.progress.updated"

    let log: any EventLog
    let store: ProgressStore
    /// The application topics and the workflow each carries.
    let applicationTopics: [String: Workflow]
    let retrier: Retrier
    let logger: Logger

    init(log: any EventLog, store: ProgressStore, rules: RuleBook, catalog: TopicCatalog, retrier: Retrier, logger: Logger) {
        self.log = log
        self.store = store
        var topics: [String: Workflow] = [:]
        for workflow in rules.current.values {
            for topic in catalog.topics(carrying: workflow.applicationType) { topics[topic.name] = workflow }
        }
        self.applicationTopics = topics
        self.retrier = retrier
        self.logger = logger
    }

    var topics: [String] { applicationTopics.keys.sorted() + [Self.progressTopic] }

    /// Reads until cancelled; bus and store errors are retried with back-off (``Retrier``), a
    /// closed bus ends it with a ``FatalFailure``.
    func run() async throws {
        logger.notice("gateway: following \(topics.joined(separator: ", "))")
        while !Task.isCancelled {
            let count: Int
            do {
                count = try await retrier.inLoop("progress", "reading the application and progress topics") {
                    try await readOnce()
                }
            } catch is CancellationError { return }
            if count == 0 {
                do { try await Task.sleep(for: .milliseconds(200)) } catch { return }
            }
        }
    }

    /// Reads what is new on every partition (up to 500 records each) and stores it in one
    /// transaction; returns the number of records read.
    @discardableResult
    func readOnce() async throws -> Int {
        let positions = try await store.positions()
        let described = try await log.describeTopics(topics)
        var submissions: [ProgressStore.Submission] = []
        var updates: [ProgressStore.Update] = []
        var moved: [TopicPartition: Int64] = [:]
        var count = 0
        for description in described {
            for (index, watermarks) in description.partitions.enumerated() {
                let partition = TopicPartition(description.name, index)
                let from = max(positions[partition] ?? watermarks.low, watermarks.low)
                guard from < watermarks.high else { continue }
                let records = try await log.read(partition, from: from, maxRecords: 500)
                guard let last = records.last else { continue }
                moved[partition] = last.offset + 1
                count += records.count
                for record in records {
                    guard let body = try? JSONValue.parse(record.value),
                        let applicationId = body[pointer: "/applicationId"]?.stringValue
                    else { continue }  // the validating publishers let nothing else on these topics
                    if description.name == Self.progressTopic {
                        updates.append(
                            ProgressStore.Update(
                                applicationId: applicationId,
                                workflow: body[pointer: "/service"]?.stringValue ?? "",
                                body: String(decoding: record.value, as: UTF8.self),
                                millis: Int64((record.timestamp.timeIntervalSince1970 * 1000).rounded())))
                    } else if let workflow = applicationTopics[description.name] {
                        submissions.append(
                            ProgressStore.Submission(
                                applicationId: applicationId, workflow: workflow.id,
                                applicant: Self.applicant(of: body, in: workflow),
                                submittedAt: body[pointer: "/submittedAt"]?.stringValue.flatMap(ChinaTime.parse)
                                    ?? record.timestamp))
                    }
                }
            }
        }
        if !moved.isEmpty { try await store.apply(submissions: submissions, updates: updates, positions: moved) }
        return count
    }

    /// Who applied, as access decisions name them: the credit code when the workflow names one and
    /// the application carries it, else the applicant's resident ID (the rule the supervision of
    /// repeat visits follows, Rules/README.md).
    static func applicant(of application: JSONValue, in workflow: Workflow) -> String? {
        if let path = workflow.applicant.creditCode, let code = path.value(in: application)?.stringValue,
            !code.isEmpty
        {
            return code
        }
        return workflow.applicant.residentId.value(in: application)?.stringValue
    }
}
