import Foundation

/// A growing buffer that JSON text is written into: ``JSONValue/serialized()`` and the
/// orchestrator's stored cases write through it.
///
/// Appending to a `[UInt8]` checks that the array is uniquely referenced and has room on every
/// call, and `append(contentsOf:)` goes through the generic sequence path: about 90 instructions
/// for each run of a string's bytes and a third of serialising an event body (callgrind on the
/// benchmark's event path, issue 9). Here a byte is a store and a run is one `memcpy`, with one
/// capacity check each. The buffer is freed when the value goes away (it cannot be copied).
public struct JSONOutput: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var written: Int
    /// The bytes written so far.
    public var count: Int { written }
    @usableFromInline var capacity: Int

    /// An empty buffer with room for `capacity` bytes (it grows beyond them as needed).
    public init(capacity: Int = 2048) {
        self.capacity = Swift.max(16, capacity)
        base = .allocate(capacity: self.capacity)
        written = 0
    }

    deinit { base.deallocate() }

    /// Makes room for `extra` more bytes.
    @inlinable @inline(__always)
    public mutating func reserve(_ extra: Int) {
        if written &+ extra > capacity { grow(toHold: written &+ extra) }
    }

    @usableFromInline
    mutating func grow(toHold needed: Int) {
        var larger = capacity * 2
        while larger < needed { larger *= 2 }
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.initialize(from: base, count: written)
        base.deallocate()
        base = moved
        capacity = larger
    }

    /// Appends one byte.
    @inlinable @inline(__always)
    public mutating func append(_ byte: UInt8) {
        reserve(1)
        base[written] = byte
        written &+= 1
    }

    /// Appends bytes.
    @inlinable
    public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        reserve(bytes.count)
        (base + written).initialize(from: source, count: bytes.count)
        written &+= bytes.count
    }

    /// Appends the UTF-8 bytes of a literal as they are (no quotes, no escapes): JSON punctuation
    /// and member names known to need no escape.
    @inlinable
    public mutating func append(_ literal: StaticString) {
        if literal.hasPointerRepresentation {
            append(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
        } else {
            var text = literal.description
            text.withUTF8 { append($0) }
        }
    }

    /// Appends `"name":` for a member name that needs no escape (a literal of the writer's own:
    /// no quote, backslash or control character), with one capacity check.
    @inlinable
    public mutating func appendMemberName(_ name: StaticString) {
        guard name.hasPointerRepresentation else {
            append(UInt8(ascii: "\""))
            append(name)
            append("\":")
            return
        }
        let length = name.utf8CodeUnitCount
        reserve(length &+ 3)
        base[written] = UInt8(ascii: "\"")
        (base + (written &+ 1)).initialize(from: name.utf8Start, count: length)
        base[written &+ 1 &+ length] = UInt8(ascii: "\"")
        base[written &+ 2 &+ length] = UInt8(ascii: ":")
        written &+= length &+ 3
    }

    /// Appends an integer in decimal, as `description` writes it, with one capacity check.
    public mutating func appendDecimal(_ value: Int64) {
        reserve(20)  // "-9223372036854775808"
        if value < 0 {
            base[written] = UInt8(ascii: "-")
            written &+= 1
        }
        var magnitude = value.magnitude
        var digits = 1
        var probe = magnitude
        while probe >= 10 {
            probe /= 10
            digits &+= 1
        }
        var position = written &+ digits
        written = position
        repeat {
            position &-= 1
            base[position] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
    }

    /// Appends the UTF-8 bytes of `text` as they are (no quotes, no escapes).
    @inlinable
    public mutating func appendUTF8(_ text: String) {
        var text = text
        text.withUTF8 { append($0) }
    }

    /// Appends `value.description` (Swift's shortest text that reads back as the same `Double`:
    /// `801234567.0`, `801234567.25`).
    ///
    /// Instants are stored as seconds since 2001 and are almost always whole milliseconds, which
    /// `description` took about 700 instructions to print (callgrind, issue 9): such a value is
    /// written here from its integer digits. It is one when `m / 1000` (IEEE division, correctly
    /// rounded, of an `m` below 2⁵³) is the value, so the text `whole.fff` reads back as it; below
    /// 2⁴⁰ seconds the doubles are less than a millisecond apart (2⁻¹² s), so no shorter text reads
    /// back as the value and no other text of three decimals does: the text is `description`'s
    /// (with `.0` for a whole number, and trailing zeros dropped). Anything else (negative, larger,
    /// finer) is written by `description`.
    public mutating func appendDescription(of value: Double) {
        guard value.sign == .plus, value < 1_099_511_627_776 else {
            appendUTF8(value.description)
            return
        }
        let milliseconds = Int64((value * 1000).rounded())
        guard Double(milliseconds) / 1000 == value else {
            appendUTF8(value.description)
            return
        }
        JSONValue.writeInteger(milliseconds / 1000, to: &self)
        append(UInt8(ascii: "."))
        let fraction = Int(milliseconds % 1000)
        let (tenths, hundredths, thousandths) = (fraction / 100, fraction / 10 % 10, fraction % 10)
        append(UInt8(ascii: "0") + UInt8(tenths))
        if hundredths != 0 || thousandths != 0 { append(UInt8(ascii: "0") + UInt8(hundredths)) }
        if thousandths != 0 { append(UInt8(ascii: "0") + UInt8(thousandths)) }
    }

    /// The bytes written, as `Data`.
    public var data: Data { Data(bytes: base, count: written) }

    /// The bytes written, as an array.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: written)) }

    /// Appends the bytes written to `array`.
    public func append(to array: inout [UInt8]) {
        array.append(contentsOf: UnsafeBufferPointer(start: base, count: written))
    }
}
