import SharedView

/// The shared data view is where the orchestrator finds the facts of `sharedFact:` materials: each
/// lookup goes through the view's one read path, which records the read (reader, reason, the
/// facts' event ids) in the view's usage log, so `onewindow data-usage ID` lists it.
extension SharedViewStore: SharedFactLookup {
    public func latestFact(kind: String, subject: String, reader: String, reason: String) async throws
        -> SharedFactRecord?
    {
        let fact: ViewFact? = try await latestFact(kind: kind, subject: subject, reader: reader, reason: reason)
        guard let fact else { return nil }
        return SharedFactRecord(
            kind: fact.kind, subject: fact.subject, eventId: fact.eventId, topic: fact.topic, time: fact.time,
            data: fact.body)
    }
}
