import Foundation

/// Chooses a record's partition from its key, the way Kafka's default partitioner does, so that a
/// key lands in the same partition on both backends (librdkafka: `partitioner=murmur2_random`).
public enum Partitioner {
    /// The partition for a key: murmur2 of the key bytes, made positive, modulo the partitions.
    public static func partition(forKey key: Data, partitions: Int) -> Int {
        precondition(partitions > 0, "a topic has at least one partition")
        return Int(murmur2(key) & 0x7fff_ffff) % partitions
    }

    /// Kafka's 32-bit murmur2 hash (seed 0x9747b28c), as in `org.apache.kafka.common.utils.Utils`.
    public static func murmur2(_ data: Data) -> UInt32 {
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        let length = data.count
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: length)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            let blocks = length / 4
            for block in 0..<blocks {
                let i = block * 4
                var k =
                    UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16
                    | UInt32(bytes[i + 3]) << 24
                k &*= m
                k ^= k >> r
                k &*= m
                h &*= m
                h ^= k
            }
            let tail = blocks * 4
            switch length & 3 {
            case 3:
                h ^= UInt32(bytes[tail + 2]) << 16
                h ^= UInt32(bytes[tail + 1]) << 8
                h ^= UInt32(bytes[tail])
                h &*= m
            case 2:
                h ^= UInt32(bytes[tail + 1]) << 8
                h ^= UInt32(bytes[tail])
                h &*= m
            case 1:
                h ^= UInt32(bytes[tail])
                h &*= m
            default:
                break
            }
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return h
    }
}
