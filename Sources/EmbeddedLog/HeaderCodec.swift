import EventLog
import Foundation

/// Stores a record's headers as one blob: for each header, the name's length (4 bytes, little
/// endian), the name in UTF-8, the value's length, the value. Empty list → empty blob.
enum HeaderCodec {
    static func encode(_ headers: [LogHeader]) -> Data {
        var size = 0
        for header in headers { size += 8 + header.name.utf8.count + header.value.count }
        var data = Data(count: size)
        data.withUnsafeMutableBytes { (buffer: UnsafeMutableRawBufferPointer) in
            var index = 0
            func put(_ length: Int) {
                buffer.storeBytes(of: UInt32(length).littleEndian, toByteOffset: index, as: UInt32.self)
                index += 4
            }
            for header in headers {
                var name = header.name
                name.withUTF8 { utf8 in
                    put(utf8.count)
                    if utf8.count > 0 {
                        buffer.baseAddress!.advanced(by: index).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count)
                    }
                    index += utf8.count
                }
                put(header.value.count)
                header.value.withUnsafeBytes { value in
                    if value.count > 0 {
                        buffer.baseAddress!.advanced(by: index).copyMemory(from: value.baseAddress!, byteCount: value.count)
                    }
                }
                index += header.value.count
            }
        }
        return data
    }

    /// The last value decoded for each header whose value repeats from record to record
    /// (`ce_source`, `ce_type`, `content-type`…): a consumer reading a batch shares one copy of
    /// such a value instead of allocating one per record.
    struct ValueCache {
        fileprivate var values = [Data?](repeating: nil, count: HeaderCodec.knownNames.count)

        init() {}
    }

    static func decode(_ data: Data) throws -> [LogHeader] {
        var cache = ValueCache()
        return try decode(data, cache: &cache)
    }

    /// Decodes a header blob, sharing repeated values through `cache` (one per batch read).
    static func decode(_ data: Data, cache: inout ValueCache) throws -> [LogHeader] {
        if data.isEmpty { return [] }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [LogHeader] in
            var headers: [LogHeader] = []
            headers.reserveCapacity(8)  // a CloudEvent's headers
            var index = 0
            func readLength() throws -> Int {
                guard index + 4 <= raw.count else { throw corrupt() }
                let value = raw.loadUnaligned(fromByteOffset: index, as: UInt32.self).littleEndian
                index += 4
                guard index + Int(value) <= raw.count else { throw corrupt() }
                return Int(value)
            }
            while index < raw.count {
                let nameLength = try readLength()
                let nameBytes = UnsafeRawBufferPointer(rebasing: raw[index..<index + nameLength])
                let known = knownName(nameBytes)
                let name = known.map { knownNames[$0].name } ?? String(decoding: nameBytes, as: UTF8.self)
                index += nameLength
                let valueLength = try readLength()
                let bytes = UnsafeRawBufferPointer(rebasing: raw[index..<index + valueLength])
                index += valueLength
                // Values of up to 14 bytes live inside the `Data` itself: nothing to share.
                guard valueLength > 14, let known, knownNames[known].repeats else {
                    headers.append(LogHeader(name: name, value: copy(bytes)))
                    continue
                }
                if let cached = cache.values[known], cached.count == valueLength,
                    cached.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress!, valueLength) == 0 })
                {
                    headers.append(LogHeader(name: name, value: cached))
                } else {
                    let value = copy(bytes)
                    cache.values[known] = value
                    headers.append(LogHeader(name: name, value: value))
                }
            }
            return headers
        }
    }

    /// A copy from the base pointer: a `Data` made from a slice goes through a generic copy.
    private static func copy(_ bytes: UnsafeRawBufferPointer) -> Data {
        bytes.isEmpty ? Data() : Data(bytes: bytes.baseAddress!, count: bytes.count)
    }

    /// The header names every OneWindow record carries, shared instead of decoded per record
    /// (a consumer decodes millions of them): a length check, then one byte comparison.
    /// `repeats` marks those whose value is usually the same from one record to the next.
    fileprivate static let knownNames: [(bytes: [UInt8], name: String, repeats: Bool)] = [
        ("ce_id", false), ("ce_source", true), ("ce_type", true), ("ce_subject", false), ("ce_time", false),
        ("ce_specversion", true), ("content-type", true), ("ce_correlationid", false), ("ce_causationid", false),
        ("dl_code", true), ("dl_reason", false), ("dl_original_topic", true), ("dl_time", false),
        ("dl_refused_by", true),
    ].map { (Array($0.0.utf8), $0.0, $0.1) }

    /// The index of a known name in ``knownNames``.
    private static func knownName(_ bytes: UnsafeRawBufferPointer) -> Int? {
        for (position, known) in knownNames.enumerated() where known.bytes.count == bytes.count {
            let equal = known.bytes.withUnsafeBytes { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
            if equal { return position }
        }
        return nil
    }

    private static func corrupt() -> LogError {
        LogError(
            .storage, "a stored record's headers are corrupt",
            remedy: "the database file was changed outside OneWindow; restore it from a backup")
    }
}
