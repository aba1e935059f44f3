package dupes

// NamedPair is a Pair with the rows' ids, as the command and the server print it.
type NamedPair struct {
	A        string  `json:"a"`
	B        string  `json:"b"`
	Distance float64 `json:"distance"` // a float32 value widened for printing
}

// NamedGroup is a Group with the rows' ids: one line of `simsearch dupes --json`.
type NamedGroup struct {
	IDs   []string    `json:"ids"`
	Pairs []NamedPair `json:"pairs"`
}

// Name replaces the rows of groups by their ids.
func Name(groups []Group, id func(row int) (string, error)) ([]NamedGroup, error) {
	out := make([]NamedGroup, len(groups))
	for i, g := range groups {
		ng := NamedGroup{IDs: make([]string, len(g.Rows)), Pairs: make([]NamedPair, len(g.Pairs))}
		for j, r := range g.Rows {
			s, err := id(r)
			if err != nil {
				return nil, err
			}
			ng.IDs[j] = s
		}
		for j, p := range g.Pairs {
			a, err := id(p.A)
			if err != nil {
				return nil, err
			}
			b, err := id(p.B)
			if err != nil {
				return nil, err
			}
			ng.Pairs[j] = NamedPair{A: a, B: b, Distance: float64(p.Distance)}
		}
		out[i] = ng
	}
	return out, nil
}
