import Foundation

/// An object schema's property names, for finding which property an instance's member is without
/// `Hasher`: SipHash over each member name and the dictionary probe it fed were a quarter of
/// validating an event body (issue 9's profile). A name is hashed from its length and a few of its
/// UTF-8 bytes into a small open-addressed table and then compared byte for byte.
///
/// Byte equality is `String` equality only where both sides are ASCII (`String` compares canonical
/// equivalents as equal: `"\u{212A}"`, the Kelvin sign, equals `"K"`). A name that is not ASCII,
/// or a table with a property name that is not, is looked up in a `[String: Int]` instead, so the
/// answer is always the one `==` gives.
///
/// A class holding its table in memory of its own, so that a lookup retains nothing (a struct of
/// arrays read from a schema node was copied, four arrays retained and released, per lookup).
final class PropertyTable: @unchecked Sendable {
    // Immutable after `init`: @unchecked Sendable holds because nothing writes the buffers later.
    /// Per slot, the position of the name in it plus one; 0 for an empty slot.
    private let slots: UnsafeMutableBufferPointer<Int32>
    /// The names' UTF-8 bytes one after the other, and where each starts (one more entry than names).
    private let bytes: UnsafeMutableBufferPointer<UInt8>
    private let starts: UnsafeMutableBufferPointer<Int>
    private let mask: Int
    /// For names that are not ASCII (on either side): name → position.
    private let byName: [String: Int]
    /// Whether every name is ASCII, so that an ASCII member name is looked up by its bytes.
    private let ascii: Bool

    init(_ names: [String]) {
        var size = 4
        while size < 2 * names.count { size <<= 1 }
        slots = .allocate(capacity: size)
        slots.initialize(repeating: 0)
        mask = size - 1
        let utf8 = names.map { Array($0.utf8) }
        bytes = .allocate(capacity: max(1, utf8.reduce(0) { $0 + $1.count }))
        bytes.initialize(repeating: 0)
        starts = .allocate(capacity: names.count + 1)
        starts.initialize(repeating: 0)
        var byName: [String: Int] = [:]
        var ascii = true
        var end = 0
        for (position, name) in names.enumerated() {
            byName[name] = position
            if utf8[position].contains(where: { $0 >= 0x80 }) { ascii = false }
            for byte in utf8[position] {
                bytes[end] = byte
                end += 1
            }
            starts[position + 1] = end
            var slot = utf8[position].withUnsafeBufferPointer { Self.hash($0) } & mask
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(position + 1)
        }
        self.byName = byName
        self.ascii = ascii
    }

    deinit {
        slots.deallocate()
        bytes.deallocate()
        starts.deallocate()
    }

    /// The position of `name` among the names the table was made of, `nil` when it is none of them.
    func position(of name: String) -> Int? {
        var name = name
        let found = name.withUTF8 { utf8 -> Int? in
            if ascii {
                // Bytes equal to an ASCII name's are that name; only a miss may still be a
                // non-ASCII spelling of one (below).
                var slot = Self.hash(utf8) & mask
                while true {
                    let entry = Int(slots[slot])
                    if entry == 0 { break }
                    let position = entry - 1
                    let start = starts[position]
                    if starts[position + 1] - start == utf8.count,
                        utf8.isEmpty || memcmp(bytes.baseAddress! + start, utf8.baseAddress!, utf8.count) == 0
                    {
                        return position
                    }
                    slot = (slot + 1) & mask
                }
                var seen: UInt8 = 0
                for byte in utf8 { seen |= byte }
                if seen < 0x80 { return nil }
            }
            return -1
        }
        if found == -1 { return byName[name] }
        return found
    }

    /// A hash of a name from its length and up to four of its bytes (first, second, middle, last):
    /// enough to spread a schema's few property names, and it does not read the whole name.
    @inline(__always)
    private static func hash(_ utf8: UnsafeBufferPointer<UInt8>) -> Int {
        let count = utf8.count
        guard count > 0 else { return 0 }
        var mixed = UInt64(count)
        mixed |= UInt64(utf8[0]) << 8
        mixed |= UInt64(utf8[count > 1 ? 1 : 0]) << 16
        mixed |= UInt64(utf8[count >> 1]) << 24
        mixed |= UInt64(utf8[count - 1]) << 32
        mixed &*= 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: mixed >> 32)
    }
}
