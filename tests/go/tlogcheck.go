// tlogcheck.go -- independent verifier of sinkd evidence logs and bundles, written only against
// golang.org/x/mod/sumdb/{note,tlog} (Debian golang-golang-x-mod-dev). Shares no code with sinkd.
//
//	tlogcheck log    LOG_DIR VKEY_FILE   verify checkpoint signatures, tree hash from tiles,
//	                                     every entry against its tile, consistency of checkpoints
//	tlogcheck bundle BUNDLE_DIR VKEY_FILE
//	                                     verify a `sinkd prove` bundle with the log's published
//	                                     key; open each sealed entry with the seal_key and
//	                                     seal_nonce the bundle gives for it (AES-256-GCM)
//	tlogcheck cosigned NOTE LOG_VKEY WITNESS_VKEY...
//	                                     verify a cosigned checkpoint (C2SP tlog-cosignature):
//	                                     the log's signature and every witness's cosignature
//
// Build offline: GO111MODULE=off GOPATH=/usr/share/gocode go run tlogcheck.go ...
package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type checkpoint struct {
	origin string
	size   int64
	hash   tlog.Hash
}

// openCheckpoint verifies a C2SP checkpoint note and parses its first three lines
// (tlog.ParseTree only accepts the go.sum header, TLOG.md section 2).
func openCheckpoint(msg []byte, v note.Verifier) (checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return checkpoint{}, err
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return checkpoint{}, fmt.Errorf("checkpoint: fewer than 3 lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || (len(lines[1]) > 1 && lines[1][0] == '0') {
		return checkpoint{}, fmt.Errorf("checkpoint: bad size %q", lines[1])
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, err
	}
	if lines[0] != v.Name() {
		return checkpoint{}, fmt.Errorf("checkpoint: origin %q is not the key name %q", lines[0], v.Name())
	}
	return checkpoint{lines[0], size, h}, nil
}

// c2spPath maps x/mod tile paths to C2SP tlog-tiles paths (TLOG.md section 4).
func c2spPath(t tlog.Tile) string {
	p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
	return strings.Replace(p, "tile/data/", "tile/entries/", 1)
}

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil && t.W < 256 {
			// C2SP: a partial tile may be replaced by the full one; use its prefix.
			full := t
			full.W = 256
			b, err = os.ReadFile(filepath.Join(d.dir, c2spPath(full)))
			if err == nil && len(b) >= t.W*32 {
				b = b[:t.W*32]
			}
		}
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlogcheck: FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func checkLog(dir, vkeyFile string) {
	vk, err := os.ReadFile(vkeyFile)
	if err != nil {
		fail("%v", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vk)))
	if err != nil {
		fail("vkey: %v", err)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	latest, err := openCheckpoint(msg, v)
	if err != nil {
		fail("checkpoint: %v", err)
	}
	tree := tlog.Tree{N: latest.size, Hash: latest.hash}
	// TileHashReader authenticates every tile it reads against the signed tree hash.
	hr := tlog.TileHashReader(tree, dirTiles{dir})
	th, err := tlog.TreeHash(latest.size, hr)
	if err != nil || th != latest.hash {
		fail("tree hash from tiles: %v (%v != %v)", err, th, latest.hash)
	}
	// Every entry: leaf hash from the bundle equals the authenticated level-0 hash.
	for n := int64(0); n*256 < latest.size; n++ {
		w := latest.size - n*256
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: n, W: int(w)}
		data, err := dirTiles{dir}.ReadTiles([]tlog.Tile{t})
		if err != nil {
			fail("entries: %v", err)
		}
		b := data[0]
		idx := make([]int64, w)
		for i := range idx {
			idx[i] = n*256 + int64(i)
		}
		hashes, err := hr.ReadHashes(storedIndexes(idx))
		if err != nil {
			fail("hashes of tile %d: %v", n, err)
		}
		off := 0
		for i := int64(0); i < w; i++ {
			if off+2 > len(b) {
				fail("%s: entry %d truncated at byte %d", c2spPath(t), n*256+i, off)
			}
			l := int(b[off])<<8 | int(b[off+1])
			if off+2+l > len(b) {
				fail("%s: entry %d truncated at byte %d", c2spPath(t), n*256+i, off)
			}
			if tlog.RecordHash(b[off+2:off+2+l]) != hashes[i] {
				fail("entry %d (%s byte %d) does not match its leaf hash", n*256+i, c2spPath(t), off)
			}
			off += 2 + l
		}
		if off != len(b) {
			fail("%s: %d trailing bytes", c2spPath(t), len(b)-off)
		}
	}
	// Every archived checkpoint: signature, then consistency with the latest tree.
	ents, err := os.ReadDir(filepath.Join(dir, "checkpoints"))
	if err != nil {
		fail("%v", err)
	}
	var sizes []int64
	cps := map[int64]checkpoint{}
	for _, e := range ents {
		m, err := os.ReadFile(filepath.Join(dir, "checkpoints", e.Name()))
		if err != nil {
			fail("%v", err)
		}
		c, err := openCheckpoint(m, v)
		if err != nil {
			fail("checkpoints/%s: %v", e.Name(), err)
		}
		if strconv.FormatInt(c.size, 10) != e.Name() || c.size > latest.size {
			fail("checkpoints/%s: holds size %d", e.Name(), c.size)
		}
		sizes = append(sizes, c.size)
		cps[c.size] = c
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	if len(sizes) == 0 || sizes[len(sizes)-1] != latest.size || cps[latest.size].hash != latest.hash {
		fail("checkpoints/: latest checkpoint %d not archived", latest.size)
	}
	for _, s := range sizes {
		c := cps[s]
		if s == 0 {
			continue
		}
		p, err := tlog.ProveTree(latest.size, s, hr)
		if err != nil {
			fail("consistency %d -> %d: %v", s, latest.size, err)
		}
		if err := tlog.CheckTree(p, latest.size, latest.hash, s, c.hash); err != nil {
			fail("checkpoints/%d is not consistent with checkpoint %d: %v", s, latest.size, err)
		}
	}
	fmt.Printf("tlogcheck: OK: %s: %d entries, %d checkpoints consistent\n", dir, latest.size, len(sizes))
}

// storedIndexes maps leaf indexes to x/mod's stored-hash indexes (level 0).
func storedIndexes(leaves []int64) []int64 {
	out := make([]int64, len(leaves))
	for i, n := range leaves {
		out[i] = tlog.StoredHashIndex(0, n)
	}
	return out
}

type manifest struct {
	Format   string `json:"format"`
	Origin   string `json:"origin"`
	TreeSize int64  `json:"tree_size"`
	Root     string `json:"root"`
	Entries  []struct {
		Index          int64    `json:"index"`
		File           string   `json:"file"`
		LeafHash       string   `json:"leaf_hash"`
		InclusionProof []string `json:"inclusion_proof"`
		SealKey        string   `json:"seal_key,omitempty"`
		SealNonce      string   `json:"seal_nonce,omitempty"`
		Sealed         string   `json:"sealed,omitempty"`
	} `json:"entries"`
}

// personal lists the fields sinkd seals, by record kind (contact, heartbeats, decision,
// command-sent/-failed, access): src, host, user, local_ip, bot_key, scope.
var personal = map[byte]map[byte]bool{
	1: {3: true, 10: true, 11: true, 13: true, 16: true}, 9: {3: true, 16: true},
	2: {3: true, 32: true}, 3: {3: true, 32: true}, 4: {3: true, 32: true}, 10: {47: true},
}

type field struct {
	tag   byte
	off   int
	value []byte
}

// fields splits a record's fields from start: tag(1) length(2, big-endian) value.
func fields(data []byte, start int) ([]field, error) {
	var out []field
	for pos := start; pos < len(data); {
		if len(data)-pos < 3 {
			return nil, fmt.Errorf("truncated field header at byte %d", pos)
		}
		n := int(binary.BigEndian.Uint16(data[pos+1:]))
		if n == 0 || pos+3+n > len(data) {
			return nil, fmt.Errorf("bad field length at byte %d", pos)
		}
		out = append(out, field{data[pos], pos, data[pos+3 : pos+3+n]})
		pos += 3 + n
	}
	return out, nil
}

// openSealed opens tag 82 (the last field) with the record's own key and nonce; the additional
// data is every byte before it. It returns how many personal fields it held.
func openSealed(data, key, nonce []byte) (int, error) {
	if len(data) < 2 || data[0] != 1 {
		return 0, fmt.Errorf("not a sinkd record")
	}
	fs, err := fields(data, 2)
	if err != nil {
		return 0, err
	}
	if len(fs) == 0 || fs[len(fs)-1].tag != 82 {
		return 0, fmt.Errorf("not a sealed record")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return 0, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return 0, err
	}
	last := fs[len(fs)-1]
	plain, err := gcm.Open(nil, nonce, last.value, data[:last.off])
	if err != nil {
		return 0, err
	}
	ps, err := fields(plain, 0)
	if err != nil {
		return 0, err
	}
	prev := byte(0)
	for _, f := range ps {
		if !personal[data[1]][f.tag] || f.tag <= prev {
			return 0, fmt.Errorf("sealed field %d is not a personal field of kind %d in order", f.tag, data[1])
		}
		prev = f.tag
	}
	return len(ps), nil
}

// checkBundle trusts the log key the caller gives (the published one), never the bundle's own
// log.vkey, which must be the same key.
func checkBundle(dir, vkeyFile string) {
	vk, err := os.ReadFile(vkeyFile)
	if err != nil {
		fail("%v", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vk)))
	if err != nil {
		fail("%s: %v", vkeyFile, err)
	}
	own, err := os.ReadFile(filepath.Join(dir, "log.vkey"))
	if err != nil {
		fail("%v", err)
	}
	if strings.TrimSpace(string(own)) != strings.TrimSpace(string(vk)) {
		fail("the bundle's log.vkey is not the trusted key %s", vkeyFile)
	}
	msg, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	cp, err := openCheckpoint(msg, v)
	if err != nil {
		fail("checkpoint: %v", err)
	}
	mb, err := os.ReadFile(filepath.Join(dir, "bundle.json"))
	if err != nil {
		fail("%v", err)
	}
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(mb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		fail("bundle.json: %v", err)
	}
	if m.TreeSize != cp.size || m.Origin != cp.origin || m.Root != cp.hash.String() {
		fail("bundle.json: tree head differs from the signed checkpoint")
	}
	opened := 0
	for _, e := range m.Entries {
		if e.File != fmt.Sprintf("entries/%d.bin", e.Index) {
			fail("bundle.json: entry %d names %q", e.Index, e.File)
		}
		data, err := os.ReadFile(filepath.Join(dir, e.File))
		if err != nil {
			fail("%v", err)
		}
		leaf := tlog.RecordHash(data)
		if hex.EncodeToString(leaf[:]) != e.LeafHash {
			fail("%s: does not hash to the leaf hash of entry %d", e.File, e.Index)
		}
		var proof tlog.RecordProof
		for _, p := range e.InclusionProof {
			b, err := hex.DecodeString(p)
			if err != nil || len(b) != 32 {
				fail("entry %d: bad proof hash", e.Index)
			}
			var h tlog.Hash
			copy(h[:], b)
			proof = append(proof, h)
		}
		if err := tlog.CheckRecord(proof, cp.size, cp.hash, e.Index, leaf); err != nil {
			fail("entry %d: inclusion proof: %v", e.Index, err)
		}
		if e.SealKey != "" {
			key, err1 := hex.DecodeString(e.SealKey)
			nonce, err2 := hex.DecodeString(e.SealNonce)
			if err1 != nil || err2 != nil || len(key) != 32 || len(nonce) != 12 {
				fail("entry %d: bad seal_key or seal_nonce", e.Index)
			}
			n, err := openSealed(data, key, nonce)
			if err != nil {
				fail("entry %d: its seal_key does not open it: %v", e.Index, err)
			}
			opened++
			fmt.Printf("  entry %d opened: %d personal fields\n", e.Index, n)
		}
	}
	fmt.Printf("tlogcheck: OK: bundle %s: %d entries in the signed tree of size %d, %d sealed entries opened\n",
		dir, len(m.Entries), cp.size, opened)
}

// cosigVerifier is a note.Verifier for Ed25519 cosignature/v1 (signature type 0x04): x/mod
// hands Verify the signature bytes after the key hash, i.e. time (u64, big-endian) || Ed25519,
// signed over "cosignature/v1\ntime <time>\n" followed by the note text (TLOG.md section 5).
type cosigVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
	time uint64
}

func (c *cosigVerifier) Name() string    { return c.name }
func (c *cosigVerifier) KeyHash() uint32 { return c.hash }
func (c *cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	m := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	if !ed25519.Verify(c.pub, m, sig[8:]) {
		return false
	}
	c.time = t
	return true
}

func newCosigVerifier(vkey string) (*cosigVerifier, error) {
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("witness key: want name+hash+key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x04 {
		return nil, fmt.Errorf("witness key: want base64 of 0x04 || 32-byte key")
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	hash := binary.BigEndian.Uint32(h[:4])
	if fmt.Sprintf("%08x", hash) != parts[1] {
		return nil, fmt.Errorf("witness key: key hash %s does not match the key", parts[1])
	}
	return &cosigVerifier{name: parts[0], hash: hash, pub: ed25519.PublicKey(raw[1:])}, nil
}

func checkCosigned(file, logVkey string, witnessVkeys []string) {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			fail("%v", err)
		}
		return b
	}
	lv, err := note.NewVerifier(strings.TrimSpace(string(read(logVkey))))
	if err != nil {
		fail("log vkey: %v", err)
	}
	verifiers := []note.Verifier{lv}
	var ws []*cosigVerifier
	for _, f := range witnessVkeys {
		w, err := newCosigVerifier(string(read(f)))
		if err != nil {
			fail("%s: %v", f, err)
		}
		ws = append(ws, w)
		verifiers = append(verifiers, w)
	}
	msg := read(file)
	cp, err := openCheckpoint(msg, lv)
	if err != nil {
		fail("%s: %v", file, err)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		fail("%s: %v", file, err)
	}
	for _, w := range ws {
		found := false
		for _, s := range n.Sigs {
			found = found || (s.Name == w.name && s.Hash == w.hash)
		}
		if !found {
			fail("%s: no cosignature by %s", file, w.name)
		}
		fmt.Printf("tlogcheck: cosignature: tree %d by %s at %d\n", cp.size, w.name, w.time)
	}
	fmt.Printf("tlogcheck: OK: %s: tree %d signed by %s, %d cosignatures\n", file, cp.size, lv.Name(), len(ws))
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "log" {
		checkLog(os.Args[2], os.Args[3])
	} else if len(os.Args) == 4 && os.Args[1] == "bundle" {
		checkBundle(os.Args[2], os.Args[3])
	} else if len(os.Args) >= 5 && os.Args[1] == "cosigned" {
		checkCosigned(os.Args[2], os.Args[3], os.Args[4:])
	} else {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck log LOG_DIR VKEY_FILE | tlogcheck bundle BUNDLE_DIR VKEY_FILE | "+
			"tlogcheck cosigned NOTE LOG_VKEY WITNESS_VKEY...")
		os.Exit(2)
	}
}
