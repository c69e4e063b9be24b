// Dataset formats: what a file is, and Arrow IPC files as the stream the
// explorer unit reads. No DOM: the benchmark page and Node can import it.

// The format from the file name, else from the first bytes.
export function sniff(name, bytes) {
  const ext = /\.([a-z0-9]+)$/i.exec(name)?.[1]?.toLowerCase();
  if (ext === 'csv' || ext === 'json' || ext === 'arrow') return ext;
  if (ext === 'arrows' || ext === 'feather') return 'arrow';
  const head = new TextDecoder().decode(bytes.subarray(0, 6));
  if (head === 'ARROW1' || (bytes[0] === 0xff && bytes[1] === 0xff && bytes[2] === 0xff && bytes[3] === 0xff)) return 'arrow';
  const first = new TextDecoder().decode(bytes.subarray(0, 64)).replace(/^\uFEFF/, '').trimStart()[0];
  return first === '[' || first === '{' ? 'json' : 'csv';
}

// An Arrow IPC *file* ("ARROW1", stream messages, footer) as the stream it
// contains; a stream as it is.
export function arrowStream(bytes) {
  const magic = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31];
  const isFile = bytes.length >= 18 && magic.every((b, i) => bytes[i] === b) && magic.every((b, i) => bytes[bytes.length - 6 + i] === b);
  if (!isFile) return bytes;
  const footer = new DataView(bytes.buffer, bytes.byteOffset).getInt32(bytes.length - 10, true);
  const end = bytes.length - 10 - footer;
  if (footer < 0 || end < 8) throw new Error(`Arrow file: its footer length ${footer} does not fit in its ${bytes.length} bytes`);
  const body = bytes.subarray(8, end);
  const eos = body.length >= 8 && new DataView(body.buffer, body.byteOffset + body.length - 8).getUint32(0, true) === 0xffffffff &&
    new DataView(body.buffer, body.byteOffset + body.length - 4).getUint32(0, true) === 0;
  if (eos) return body;
  const out = new Uint8Array(body.length + 8);
  out.set(body);
  out.set([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], body.length);
  return out;
}

