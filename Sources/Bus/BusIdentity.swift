import Foundation

extension BusAddress {
    /// What a connector's cursors are saved for: the bus as one text, the same however the address
    /// was written.
    ///
    /// - Embedded: `embedded:` + the file's absolute path + `#` + its inode, so that a log deleted
    ///   and created again at the same path (a new, empty log) counts as another bus.
    /// - Kafka: `kafka:` + the bootstrap servers, sorted. The `EventLog` protocol has no way to ask
    ///   a backend for its identity (the Kafka cluster id, a UUID kept in the embedded file), so
    ///   the address stands in for it: the same cluster reached through other servers counts as
    ///   another bus (the connector then starts over there; repeated event ids are dropped by
    ///   consumers that drop repeats).
    public var cursorIdentity: String {
        switch self {
        case .embedded(let path):
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
            let attributes = try? FileManager.default.attributesOfItem(atPath: absolute)
            let inode = (attributes?[.systemFileNumber] as? NSNumber).map { "#\($0.uint64Value)" } ?? ""
            return "embedded:\(absolute)\(inode)"
        case .kafka(let servers):
            return "kafka:" + servers.sorted().joined(separator: ",")
        }
    }
}
