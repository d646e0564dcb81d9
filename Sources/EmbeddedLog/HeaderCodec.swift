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

    static func decode(_ data: Data) throws -> [LogHeader] {
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
                let name = knownName(nameBytes) ?? String(decoding: nameBytes, as: UTF8.self)
                index += nameLength
                let valueLength = try readLength()
                // From the base pointer: a `Data` made from a slice goes through a generic copy.
                let value = valueLength == 0 ? Data() : Data(bytes: raw.baseAddress! + index, count: valueLength)
                index += valueLength
                headers.append(LogHeader(name: name, value: value))
            }
            return headers
        }
    }

    /// The header names every OneWindow record carries, shared instead of decoded per record
    /// (a consumer decodes millions of them): a length check, then one byte comparison.
    private static let knownNames: [(bytes: [UInt8], name: String)] = [
        "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time", "ce_specversion", "content-type",
        "ce_correlationid", "ce_causationid", "dl_code", "dl_reason", "dl_original_topic", "dl_time", "dl_refused_by",
    ].map { (Array($0.utf8), $0) }

    private static func knownName(_ bytes: UnsafeRawBufferPointer) -> String? {
        for known in knownNames where known.bytes.count == bytes.count {
            let equal = known.bytes.withUnsafeBytes { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
            if equal { return known.name }
        }
        return nil
    }

    private static func corrupt() -> LogError {
        LogError(
            .storage, "a stored record's headers are corrupt",
            remedy: "the database file was changed outside OneWindow; restore it from a backup")
    }
}
