// An unmodified SSE client (the `eventsource` package, a WHATWG EventSource for Node):
// prints `ready` once the stream is open, then one line per event: `<type> <data>`.
// Exits after COUNT events.
import { EventSource } from 'eventsource';

const [url, count] = [process.argv[2], Number(process.argv[3] || 1)];
let seen = 0;
const source = new EventSource(url);
source.onopen = () => console.log('ready');
source.addEventListener('m', (event) => {
  console.log(`m ${event.data}`);
  seen += 1;
  if (seen >= count) {
    source.close();
    process.exit(0);
  }
});
source.onerror = (err) => console.error('error', err && err.message);
