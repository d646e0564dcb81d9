import EventLog

/// Where a subscriber stands: for every partition of its topics, the offset of the next record it
/// has not received. Sent as each SSE event's `id` (so it comes back as `Last-Event-ID`) and as a
/// long-poll batch's `cursor`.
///
/// ## The text form
/// `1.` followed by unpadded base64url of, for each topic with a partition past offset 0 (topics
/// in name order): the first 8 bytes of the topic name's FNV-1a 64-bit hash (big-endian), the
/// number of entries as an unsigned LEB128 varint, then each entry's partition and next offset as
/// varints. A partition that is not written stands at offset 0 (it has delivered nothing, or did
/// not exist when the cursor was made), so the cursor is complete however few entries it has and
/// resuming from it can neither skip nor repeat a record. A subscriber of one topic with six
/// partitions carries a cursor of about 40 characters.
///
/// Hashes are resolved against the subscription's topics when the cursor is read; an entry whose
/// topic is not among them (a topic deleted, or a cursor of another subscription) is ignored.
public struct SubscriptionCursor: Sendable, Hashable, CustomStringConvertible {
    /// The next offset of every partition not at 0.
    public private(set) var offsets: [TopicPartition: Int64]

    /// A cursor from explicit next-offsets (offsets of 0 or less are left out: they mean "from the start").
    public init(offsets: [TopicPartition: Int64] = [:]) {
        self.offsets = offsets.filter { $0.value > 0 }
    }

    /// The next offset of `partition` (0 when the cursor does not name it).
    public subscript(partition: TopicPartition) -> Int64 { offsets[partition] ?? 0 }

    /// The text form (see the type's documentation).
    public var text: String {
        var layout: [String: [(Int, Int64)]] = [:]
        for (partition, offset) in offsets { layout[partition.topic, default: []].append((partition.partition, offset)) }
        var bytes: [UInt8] = []
        for topic in layout.keys.sorted() {
            let entries = layout[topic]!.sorted { $0.0 < $1.0 }
            CursorCoding.appendTopic(topic, entries: entries, to: &bytes)
        }
        return CursorCoding.prefix + Base64URL.encode(bytes)
    }

    public var description: String { text }

    /// Reads a cursor's text form against the topics of the subscription it is used for.
    /// - Throws: ``CursorError`` when the text is not a cursor.
    public static func parse(_ text: String, topics: [String]) throws -> SubscriptionCursor {
        guard text.hasPrefix(CursorCoding.prefix) else {
            throw CursorError(text: text, problem: "does not start with '\(CursorCoding.prefix)'")
        }
        guard let bytes = Base64URL.decode(text.dropFirst(CursorCoding.prefix.count)) else {
            throw CursorError(text: text, problem: "is not base64url after its prefix")
        }
        var names: [UInt64: String] = [:]
        for topic in topics { names[CursorCoding.hash(topic)] = topic }
        var reader = ByteReader(bytes: bytes)
        var offsets: [TopicPartition: Int64] = [:]
        while !reader.atEnd {
            guard let hash = reader.uint64(), let count = reader.varint(), count <= 1 << 20 else {
                throw CursorError(text: text, problem: "ends inside a topic's entry")
            }
            let topic = names[hash]
            for _ in 0..<count {
                guard let partition = reader.varint(), let offset = reader.varint(), partition < Int32.max,
                    offset <= UInt64(Int64.max)
                else { throw CursorError(text: text, problem: "ends inside a partition's entry") }
                if let topic { offsets[TopicPartition(topic, Int(partition))] = Int64(offset) }
            }
        }
        return SubscriptionCursor(offsets: offsets)
    }
}

/// A `Last-Event-ID` or `cursor` that is not one this hub made.
public struct CursorError: Error, Sendable, CustomStringConvertible {
    /// The text received (cut to 80 characters).
    public var text: String
    public var problem: String

    init(text: String, problem: String) {
        self.text = String(text.prefix(80))
        self.problem = problem
    }

    public var description: String {
        "the cursor '\(text)' \(problem): send back an event's id or a batch's cursor unchanged, or none to start from the group's committed offsets"
    }
}

/// The byte layout of a cursor, shared by the one-off encoding of ``SubscriptionCursor`` and the
/// per-event encoding of a running subscription.
enum CursorCoding {
    static let prefix = "1."

    /// FNV-1a, 64 bits, of the name's UTF-8 bytes.
    static func hash(_ topic: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in topic.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    static func appendTopic(_ topic: String, entries: [(Int, Int64)], to bytes: inout [UInt8]) {
        appendTopic(hash: hash(topic), entries: entries, to: &bytes)
    }

    static func appendTopic(hash: UInt64, entries: [(Int, Int64)], to bytes: inout [UInt8]) {
        appendTopic(hash: hash, count: entries.count, entry: { entries[$0] }, to: &bytes)
    }

    /// One topic's bytes from `count` entries (partition, next offset) read through `entry`; entries
    /// at offset 0 are left out, and a topic without any other writes nothing.
    static func appendTopic(hash: UInt64, count: Int, entry: (Int) -> (Int, Int64), to bytes: inout [UInt8]) {
        var written = 0
        for index in 0..<count where entry(index).1 > 0 { written += 1 }
        if written == 0 { return }
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: hash >> UInt64(shift))) }
        appendVarint(UInt64(written), to: &bytes)
        for index in 0..<count {
            let (partition, offset) = entry(index)
            if offset <= 0 { continue }
            appendVarint(UInt64(partition), to: &bytes)
            appendVarint(UInt64(offset), to: &bytes)
        }
    }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var index = 0

    var atEnd: Bool { index >= bytes.count }

    mutating func uint64() -> UInt64? {
        guard index + 8 <= bytes.count else { return nil }
        var value: UInt64 = 0
        for byte in bytes[index..<index + 8] { value = value << 8 | UInt64(byte) }
        index += 8
        return value
    }

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.count, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }
}

/// Base64url without padding (RFC 4648 §5): safe in an SSE `id` line, an HTTP header and a URL.
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xff, count: 256)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = UInt8(index) }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        encode(bytes, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the base64url text of `bytes` to `out`.
    static func encode(_ bytes: [UInt8], into out: inout [UInt8]) {
        var index = 0
        while index + 3 <= bytes.count {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out.append(alphabet[Int(chunk >> 18 & 63)])
            out.append(alphabet[Int(chunk >> 12 & 63)])
            out.append(alphabet[Int(chunk >> 6 & 63)])
            out.append(alphabet[Int(chunk & 63)])
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let chunk = UInt32(bytes[index]) << 16
            out.append(alphabet[Int(chunk >> 18 & 63)])
            out.append(alphabet[Int(chunk >> 12 & 63)])
        } else if rest == 2 {
            let chunk = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out.append(alphabet[Int(chunk >> 18 & 63)])
            out.append(alphabet[Int(chunk >> 12 & 63)])
            out.append(alphabet[Int(chunk >> 6 & 63)])
        }
    }

    static func decode(_ text: Substring) -> [UInt8]? {
        var bytes: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for character in text.utf8 {
            let value = values[Int(character)]
            if value == 0xff { return nil }
            buffer = buffer << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
            }
        }
        // A lone trailing character (6 bits) cannot be a byte: not base64url of anything.
        if bits >= 6 { return nil }
        return bytes
    }
}
