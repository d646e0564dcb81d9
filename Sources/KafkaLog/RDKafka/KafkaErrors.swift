internal import CRDKafka
import EventLog

/// librdkafka error codes as ``LogError``s with a sentence on what to do.
enum KafkaErrors {
    static func name(_ code: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2name(code)) }
    static func text(_ code: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(code)) }

    static func error(_ code: rd_kafka_resp_err_t, _ action: String, subject: String? = nil) -> LogError {
        let backend = "RD_KAFKA_RESP_ERR_" + name(code)
        let reason = "\(action) failed: \(text(code))"
        switch code {
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
            RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            return LogError(
                .unknownTopic, reason, remedy: "create the topic from the catalog with `onewindow topics apply`",
                subject: subject, backendName: backend)
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
            return LogError(
                .recordTooLarge, reason,
                remedy: "split the payload, or raise message.max.bytes on the broker and the producer",
                subject: subject, backendName: backend)
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
            // The record may have been written: the broker can have stored it and the
            // acknowledgement been lost. Appending it again can duplicate it, which consumers
            // absorb (events carry ce_id), so it is retriable: the alternative is losing it.
            return LogError(
                .timedOut, reason + " (not acknowledged within message.timeout.ms; it may have been written)",
                remedy: "append it again once the brokers in --bus are reachable (it may then be stored twice; "
                    + "consumers are idempotent on ce_id)",
                subject: subject, backendName: backend, isRetriable: true)
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
            return LogError(
                .closed, reason + " (the log closed before the record was sent; it was not written)",
                remedy: "append it again after opening the bus", subject: subject, backendName: backend)
        case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
            return LogError(
                .closed, reason + " (the log closed while the record was sent but not acknowledged; it may have been written)",
                remedy: "check whether the record arrived before appending it again, or rely on consumers being idempotent",
                subject: subject, backendName: backend)
        case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
            RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
            return LogError(
                .brokerUnreachable, reason,
                remedy: "check that the brokers in --bus are up and reachable; the operation can be retried",
                subject: subject, backendName: backend, isRetriable: true)
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
            RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED,
            RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
            return LogError(
                .authorizationFailed, reason,
                remedy: "check the SASL credentials and the ACLs of this principal (see docs/KAFKA.md)",
                subject: subject, backendName: backend)
        case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
            RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
            // A commit during a rebalance, or after this member lost its partitions.
            return LogError(
                .groupBusy, reason,
                remedy: "poll again (the rebalance completes inside poll), then retry; records not committed are "
                    + "delivered again to their partition's owner",
                subject: subject, backendName: backend, isRetriable: true)
        case RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP:
            return LogError(
                .groupBusy, reason, remedy: "stop the group's consumers first, then retry", subject: subject,
                backendName: backend, isRetriable: true)
        case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
            return LogError(.invalidOffset, reason, subject: subject, backendName: backend)
        case RD_KAFKA_RESP_ERR__DESTROY:
            return LogError(.closed, reason, remedy: "open the bus again", subject: subject, backendName: backend)
        case RD_KAFKA_RESP_ERR__FATAL:
            return LogError(
                .fatal, reason, remedy: "close the bus and open it again (restart the process)", subject: subject,
                backendName: backend)
        default:
            return LogError(.backend, reason, subject: subject, backendName: backend, isRetriable: rd_kafka_err_is_retriable(code))
        }
    }

    /// The same, from librdkafka's numeric code (for tests, which do not import librdkafka).
    static func error(rawCode: Int32, _ action: String, subject: String? = nil) -> LogError {
        error(rd_kafka_resp_err_t(rawValue: rawCode), action, subject: subject)
    }

    static func rd_kafka_err_is_retriable(_ code: rd_kafka_resp_err_t) -> Bool {
        switch code {
        case RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
            true
        default:
            false
        }
    }
}
