package domain

import "time"

// Upcasting. An event type, once written, keeps its name and its shape for
// good. A changed shape is a new version of the type:
//
//  1. The Go struct takes the new shape and its type constant the new name
//     (user.promoted.v2); Decide functions write only the new version.
//  2. The old name moves to the retired constants and RetiredEventTypes.
//  3. The old shape stays here as an unexported struct, with an upcast
//     method that fills what the old version did not record with documented
//     defaults; DecodeEvent routes the old name through it.
//  4. Both versions keep a schema file in schemas/.
//
// So evolve functions and projections see only the current shape, and the
// log is never rewritten.

// userPromotedV1 is user.promoted.v1 as written before v2.
type userPromotedV1 struct {
	UserID         string    `json:"user_id"`
	LoginIDType    string    `json:"login_id_type"`
	LoginID        string    `json:"login_id"`
	GuestCreatedAt time.Time `json:"guest_created_at"`
	PromotedAt     time.Time `json:"promoted_at"`
}

// upcast: v1 recorded neither the guest's client nor how it signed in. The
// client stays empty (it is in the guest's user.anonymous.created.v1);
// GuestMethod is GuestMethodUnknown rather than a guess.
func (v userPromotedV1) upcast() UserPromoted {
	return UserPromoted{UserID: v.UserID, GuestMethod: GuestMethodUnknown, LoginIDType: v.LoginIDType, LoginID: v.LoginID,
		GuestCreatedAt: v.GuestCreatedAt, PromotedAt: v.PromotedAt}
}

// upcastFrom decodes a payload of a retired version and upcasts it.
func upcastFrom[Old any, New Event](data []byte, u unmarshaler, upcast func(Old) New) Event {
	var v Old
	if err := u(data, &v); err != nil {
		return decodeError{err}
	}
	return upcast(v)
}
