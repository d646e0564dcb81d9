import EventLog
import Foundation
import Testing

@Suite("Kafka's default partitioner")
struct PartitionerTests {
    /// The vectors of Kafka's own `UtilsTest.testMurmur2` (signed 32-bit results).
    @Test(arguments: [
        ("21", Int32(-973_932_308)),
        ("foobar", -790_332_482),
        ("a-little-bit-long-string", -985_981_536),
        ("a-little-bit-longer-string", -1_486_304_829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        ("abc", 479_470_107),
    ])
    func murmur2MatchesKafka(_ input: String, _ expected: Int32) {
        #expect(Int32(bitPattern: Partitioner.murmur2(Data(input.utf8))) == expected)
    }

    @Test func partitionIsPositiveModuloPartitions() {
        // murmur2("21") is negative; Kafka masks the sign bit before the modulo.
        let hash = UInt32(bitPattern: -973_932_308) & 0x7fff_ffff
        #expect(Partitioner.partition(forKey: Data("21".utf8), partitions: 6) == Int(hash % 6))
        for key in ["A-1", "440604201801150012", "", "长"] {
            let partition = Partitioner.partition(forKey: Data(key.utf8), partitions: 12)
            #expect((0..<12).contains(partition))
        }
    }
}
