import GRDB

/// A connection to a SQLite file that other processes write at the same time (an embedded log, a
/// department's database, a store): it waits up to 10 s for their locks, as OneWindow's own
/// connections do, instead of failing at once with "database is locked" when a read meets a
/// writer's checkpoint or a process opening the file.
public func sharedDatabase(_ path: String) throws -> DatabaseQueue {
    var configuration = Configuration()
    configuration.busyMode = .timeout(10)
    return try DatabaseQueue(path: path, configuration: configuration)
}
