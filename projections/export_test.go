package projections

// Held is how many buckets the node keeps in memory.
func (l *SyncedRateBuckets) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
