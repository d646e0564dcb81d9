import EventLog
@testable import KafkaLog
import Testing

/// How librdkafka's codes come out as `LogError`s, for the conditions connector loops branch on:
/// retry (`isRetriable`), re-poll (`groupBusy`), give up on the record (neither), or stop the
/// process (`isFatal`). Codes as in librdkafka's rdkafka.h.
@Suite("Kafka error mapping")
struct KafkaErrorTests {
    @Test(arguments: [
        // (code, expected code, retriable, fatal)
        (-150, LogError.Code.fatal, false, true),  // _FATAL: the producer refuses every record from now on
        (-197, .closed, false, true),  // _DESTROY
        (-152, .closed, false, true),  // _PURGE_QUEUE: purged at close, never sent
        (10, .recordTooLarge, false, false),  // MSG_SIZE_TOO_LARGE
        (27, .groupBusy, true, false),  // REBALANCE_IN_PROGRESS: poll again
        (22, .groupBusy, true, false),  // ILLEGAL_GENERATION
        (25, .groupBusy, true, false),  // UNKNOWN_MEMBER_ID
        (68, .groupBusy, true, false),  // NON_EMPTY_GROUP: seek with members active
        (-195, .brokerUnreachable, true, false),  // _TRANSPORT
        (-187, .brokerUnreachable, true, false),  // _ALL_BROKERS_DOWN
        (-192, .timedOut, true, false),  // _MSG_TIMED_OUT: may have been written; consumers dedupe
    ])
    func codesMapToWhatCallersBranchOn(_ raw: Int32, _ code: LogError.Code, _ retriable: Bool, _ fatal: Bool) {
        let error = KafkaErrors.error(rawCode: raw, "testing")
        #expect(error.code == code, "\(raw): \(error)")
        #expect(error.isRetriable == retriable, "\(raw): \(error)")
        #expect(error.isFatal == fatal, "\(raw): \(error)")
        #expect(error.backendName?.hasPrefix("RD_KAFKA_RESP_ERR_") == true)
    }

    @Test func aRebalanceSaysToPollAgain() {
        #expect(KafkaErrors.error(rawCode: 27, "committing offsets").remedy.contains("poll again"))
    }
}
