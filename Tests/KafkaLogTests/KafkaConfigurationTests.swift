import Foundation
import Testing

@testable import KafkaLog

/// The configuration's conversions to what librdkafka takes; no broker needed.
@Suite struct KafkaConfigurationTests {
    @Test(arguments: [
        (Duration.milliseconds(500), Int32(500)), (.seconds(10), 10_000), (.seconds(2.25), 2250),
        (.microseconds(300), 1), (.seconds(86_400 * 30), Int32.max),
    ])
    func requestTimeoutKeepsItsFractionInLibrdkafkaMilliseconds(timeout: Duration, milliseconds: Int32) {
        var configuration = KafkaConfiguration(bootstrapServers: ["localhost:9092"])
        configuration.requestTimeout = timeout
        #expect(configuration.timeoutMilliseconds == milliseconds)
    }
}
