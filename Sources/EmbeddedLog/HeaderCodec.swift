import EventLog
import Foundation

/// Stores a record's headers as one blob: for each header, the name's length (4 bytes, little
/// endian), the name in UTF-8, the value's length, the value. Empty list → empty blob.
enum HeaderCodec {
    static func encode(_ headers: [LogHeader]) -> Data {
        var size = 0
        for header in headers { size += 8 + header.name.utf8.count + header.value.count }
        var data = Data(capacity: size)
        for header in headers {
            append(UInt32(header.name.utf8.count), to: &data)
            data.append(contentsOf: header.name.utf8)
            append(UInt32(header.value.count), to: &data)
            data.append(header.value)
        }
        return data
    }

    static func decode(_ data: Data) throws -> [LogHeader] {
        if data.isEmpty { return [] }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> [LogHeader] in
            var headers: [LogHeader] = []
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
                let name = String(decoding: raw[index..<index + nameLength], as: UTF8.self)
                index += nameLength
                let valueLength = try readLength()
                let value = Data(raw[index..<index + valueLength])
                index += valueLength
                headers.append(LogHeader(name: name, value: value))
            }
            return headers
        }
    }

    private static func append(_ value: UInt32, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    private static func corrupt() -> LogError {
        LogError(
            .storage, "a stored record's headers are corrupt",
            remedy: "the database file was changed outside OneWindow; restore it from a backup")
    }
}
