package diff

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	rpmutils "github.com/sassoftware/go-rpmutils"
)

// rpmTagNames names the header tags a reader meets; others show as "tag N".
var rpmTagNames = map[int]string{
	62: "HEADERSIGNATURES", 63: "HEADERIMMUTABLE", 100: "HEADERI18NTABLE",
	1000: "NAME", 1001: "VERSION", 1002: "RELEASE", 1003: "EPOCH", 1004: "SUMMARY", 1005: "DESCRIPTION",
	1006: "BUILDTIME", 1007: "BUILDHOST", 1009: "SIZE", 1010: "DISTRIBUTION", 1011: "VENDOR", 1014: "LICENSE",
	1015: "PACKAGER", 1016: "GROUP", 1017: "CHANGELOG", 1020: "URL", 1021: "OS", 1022: "ARCH",
	1023: "PREIN", 1024: "POSTIN", 1025: "PREUN", 1026: "POSTUN", 1044: "SOURCERPM", 1046: "ARCHIVESIZE",
	1047: "PROVIDENAME", 1048: "REQUIREFLAGS", 1049: "REQUIRENAME", 1050: "REQUIREVERSION",
	1053: "CONFLICTFLAGS", 1054: "CONFLICTNAME", 1055: "CONFLICTVERSION", 1064: "RPMVERSION",
	1080: "CHANGELOGTIME", 1081: "CHANGELOGNAME", 1082: "CHANGELOGTEXT",
	1085: "PREINPROG", 1086: "POSTINPROG", 1087: "PREUNPROG", 1088: "POSTUNPROG",
	1090: "OBSOLETENAME", 1112: "PROVIDEFLAGS", 1113: "PROVIDEVERSION", 1114: "OBSOLETEFLAGS",
	1115: "OBSOLETEVERSION", 1124: "PAYLOADFORMAT", 1125: "PAYLOADCOMPRESSOR", 1126: "PAYLOADFLAGS",
	1131: "RHNPLATFORM", 1132: "PLATFORM", 1151: "RECOMMENDNAME", 1156: "SUGGESTNAME", 1158: "SUPPLEMENTNAME",
	1159: "ENHANCENAME", 5011: "FILEDIGESTALGO", 5012: "BUGURL", 5034: "VCS", 5062: "ENCODING",
	5092: "PAYLOADDIGEST", 5093: "PAYLOADDIGESTALGO", 5097: "PAYLOADDIGESTALT",
}

var rpmSigTagNames = map[int]string{
	62: "HEADERSIGNATURES", 267: "DSA", 268: "RSA", 269: "SHA1", 270: "LONGSIGSIZE", 271: "LONGARCHIVESIZE",
	273: "SHA256", 274: "FILESIGNATURES", 275: "FILESIGNATURELENGTH", 276: "VERITYSIGNATURES",
	1000: "SIZE", 1002: "PGP", 1004: "MD5", 1005: "GPG", 1007: "PAYLOADSIZE", 1008: "RESERVEDSPACE",
}

// rpmFileTags are the per-file arrays; they are compared file by file.
var rpmFileTags = map[int]bool{
	1027: true, 1028: true, 1030: true, 1033: true, 1034: true, 1035: true, 1036: true, 1037: true,
	1039: true, 1040: true, 1045: true, 1095: true, 1096: true, 1097: true, 1116: true, 1117: true,
	1118: true, 1140: true, 1141: true, 1142: true, 1143: true, 1144: true, 5008: true,
}

type rpmTag struct {
	tag   int
	value string
}

// readRPMHeaders returns every tag of the signature and main headers with
// its value rendered on one line.
func readRPMHeaders(r io.Reader) (sig, main []rpmTag, err error) {
	lead := make([]byte, 96)
	if _, err := io.ReadFull(r, lead); err != nil {
		return nil, nil, fmt.Errorf("reading the lead: %w", err)
	}
	if sig, err = readRPMHeader(r, true); err != nil {
		return nil, nil, fmt.Errorf("reading the signature header: %w", err)
	}
	if main, err = readRPMHeader(r, false); err != nil {
		return nil, nil, fmt.Errorf("reading the header: %w", err)
	}
	return sig, main, nil
}

func readRPMHeader(r io.Reader, pad bool) ([]rpmTag, error) {
	intro := make([]byte, 16)
	if _, err := io.ReadFull(r, intro); err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint32(intro[0:4]) != 0x8eade801 {
		return nil, errors.New("bad header magic")
	}
	n := binary.BigEndian.Uint32(intro[8:12])
	size := binary.BigEndian.Uint32(intro[12:16])
	if n > 1<<16 || size > 256<<20 {
		return nil, fmt.Errorf("implausible header (%d tags, %d bytes)", n, size)
	}
	index := make([]byte, 16*n)
	if _, err := io.ReadFull(r, index); err != nil {
		return nil, err
	}
	store := size
	if pad {
		store = (size + 7) / 8 * 8
	}
	data := make([]byte, store)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	data = data[:size]
	var tags []rpmTag
	for i := uint32(0); i < n; i++ {
		e := index[16*i:]
		tag := int(int32(binary.BigEndian.Uint32(e[0:4])))
		typ := binary.BigEndian.Uint32(e[4:8])
		off := int(binary.BigEndian.Uint32(e[8:12]))
		count := int(binary.BigEndian.Uint32(e[12:16]))
		v, err := rpmValue(typ, data, off, count)
		if err != nil {
			return nil, fmt.Errorf("tag %d: %w", tag, err)
		}
		tags = append(tags, rpmTag{tag, v})
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].tag < tags[j].tag })
	return tags, nil
}

func rpmValue(typ uint32, data []byte, off, count int) (string, error) {
	if off < 0 || off > len(data) {
		return "", errors.New("offset out of range")
	}
	d := data[off:]
	ints := func(w int) (string, error) {
		if count*w > len(d) {
			return "", errors.New("value out of range")
		}
		var parts []string
		for i := 0; i < count; i++ {
			var v uint64
			switch w {
			case 1:
				v = uint64(d[i])
			case 2:
				v = uint64(binary.BigEndian.Uint16(d[2*i:]))
			case 4:
				v = uint64(binary.BigEndian.Uint32(d[4*i:]))
			case 8:
				v = binary.BigEndian.Uint64(d[8*i:])
			}
			parts = append(parts, strconv.FormatUint(v, 10))
		}
		return list(parts), nil
	}
	switch typ {
	case 0:
		return "", nil
	case 1, 2:
		return ints(1)
	case 3:
		return ints(2)
	case 4:
		return ints(4)
	case 5:
		return ints(8)
	case 6, 8, 9:
		var parts []string
		for i := 0; i < count; i++ {
			j := bytes.IndexByte(d, 0)
			if j < 0 {
				return "", errors.New("unterminated string")
			}
			parts = append(parts, string(d[:j]))
			d = d[j+1:]
		}
		if typ == 6 && len(parts) == 1 {
			return strconv.Quote(parts[0]), nil
		}
		for i := range parts {
			parts[i] = strconv.Quote(parts[i])
		}
		return list(parts), nil
	case 7:
		if count > len(d) {
			return "", errors.New("value out of range")
		}
		b := d[:count]
		if len(b) > 32 {
			return fmt.Sprintf("%d bytes %s...", len(b), hex.EncodeToString(b[:32])), nil
		}
		return hex.EncodeToString(b), nil
	}
	return "", fmt.Errorf("unknown type %d", typ)
}

func list(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	s := "[" + strings.Join(parts, ", ") + "]"
	if len(s) > 300 {
		s = s[:297] + "..."
	}
	return s
}

func tagName(names map[int]string, tag int) string {
	if n, ok := names[tag]; ok {
		return n
	}
	return "tag " + strconv.Itoa(tag)
}

// compareRPM lists differing signature-header and header tags, then the
// files (header attributes and payload contents).
func compareRPM(d *differ, where []string, a, b *blob) error {
	var sides [2]struct {
		sig, main []rpmTag
		files     []entry
	}
	for i, bl := range []*blob{a, b} {
		r, err := bl.open()
		if err != nil {
			return err
		}
		sides[i].sig, sides[i].main, err = readRPMHeaders(r)
		r.Close()
		if err != nil {
			return fmt.Errorf("rpm %s: %w", "AB"[i:i+1], err)
		}
		if sides[i].files, _, err = readRPMFiles(bl, nil, 0); err != nil {
			return fmt.Errorf("rpm %s: %w", "AB"[i:i+1], err)
		}
	}
	compareTags(d, at(where, "signature header"), sides[0].sig, sides[1].sig, rpmSigTagNames, nil)
	compareTags(d, at(where, "header"), sides[0].main, sides[1].main, rpmTagNames, rpmFileTags)
	fetch := func(side int, names map[string]bool) (map[string][]byte, error) {
		src := a
		if side == 1 {
			src = b
		}
		_, got, err := readRPMFiles(src, names, d.o.MaxNestedSize)
		return got, err
	}
	return d.compareEntries(where, sides[0].files, sides[1].files, fetch)
}

func compareTags(d *differ, where []string, a, b []rpmTag, names map[int]string, skip map[int]bool) {
	ma, mb := map[int]string{}, map[int]string{}
	var tags []int
	for _, t := range a {
		ma[t.tag] = t.value
		tags = append(tags, t.tag)
	}
	for _, t := range b {
		if _, ok := ma[t.tag]; !ok {
			tags = append(tags, t.tag)
		}
		mb[t.tag] = t.value
	}
	sort.Ints(tags)
	for _, t := range tags {
		if skip[t] {
			continue
		}
		va, okA := ma[t]
		vb, okB := mb[t]
		switch {
		case !okA:
			d.add(where, tagName(names, t), "(absent)", vb)
		case !okB:
			d.add(where, tagName(names, t), va, "(absent)")
		case va != vb:
			d.add(where, tagName(names, t), va, vb)
		}
	}
}

// readRPMFiles lists the files from the header (mode, owner, mtime, size,
// digest, link, flags) with the sha256 of their payload content; the
// contents of the files named in want are returned too.
func readRPMFiles(b *blob, want map[string]bool, limit int64) ([]entry, map[string][]byte, error) {
	r, err := b.open()
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	rpm, err := rpmutils.ReadRpm(r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the header: %w", err)
	}
	files, err := rpm.Header.GetFiles()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the file list: %w", err)
	}
	es := make([]entry, len(files))
	index := map[string]int{}
	for i, f := range files {
		mode := uint64(f.Mode())
		e := entry{name: f.Name()}
		add := func(k, v string) { e.attrs = append(e.attrs, attr{k, v}) }
		add("type", cpioType(mode))
		add("mode", fmtMode(int64(mode&0o7777)))
		add("user", f.UserName())
		add("group", f.GroupName())
		add("mtime", fmtTime(time.Unix(int64(f.Mtime()), 0)))
		add("size", strconv.FormatInt(f.Size(), 10))
		if f.Digest() != "" {
			add("digest", f.Digest())
		}
		if f.Linkname() != "" {
			add("link", f.Linkname())
		}
		add("flags", strconv.Itoa(f.Flags()))
		add("inode", strconv.Itoa(f.Inode()))
		add("device", strconv.Itoa(f.Device()))
		e.content = cpioType(mode) == "regular"
		e.size = f.Size()
		es[i] = e
		index[f.Name()] = i
	}
	got := map[string][]byte{}
	pr, err := rpm.PayloadReaderExtended()
	if err != nil {
		return nil, nil, fmt.Errorf("opening the payload: %w", err)
	}
	for {
		fi, err := pr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading the payload: %w", err)
		}
		i, ok := index[fi.Name()]
		if !ok || !es[i].content || pr.IsLink() {
			continue
		}
		keep := want[fi.Name()] && fi.Size() <= limit
		_, sum, data, err := hashReader(pr, keep, limit)
		if err != nil {
			return nil, nil, fmt.Errorf("reading %s from the payload: %w", fi.Name(), err)
		}
		es[i].sum = sum
		es[i].attrs = append(es[i].attrs, attr{"sha256", sum})
		if keep && data != nil {
			got[fi.Name()] = data
		}
	}
	return es, got, nil
}
