// A GRIP origin written with @fanoutio/serve-grip on Express: the kind of backend that
// runs behind Pushpin. GET /events/:channel holds an SSE stream on that channel when the
// request came through a GRIP proxy (verified Grip-Sig); GET /publish/:channel publishes
// one SSE event through @fanoutio/grip's Publisher to the proxy's control API.
//
// Env: PORT, CONTROL_URI, SIG_KEY (the proxy's sig_key).
import express from 'express';
import { ServeGrip } from '@fanoutio/serve-grip';

const serveGrip = new ServeGrip({
  grip: { control_uri: process.env.CONTROL_URI, verify_key: process.env.SIG_KEY },
});
const app = express();
app.use(serveGrip);

app.get('/events/:channel', (req, res) => {
  if (!req.grip.isProxied) {
    res.status(501).end('not proxied\n');
    return;
  }
  const instruct = res.grip.startInstruct();
  instruct.addChannel(req.params.channel);
  instruct.setHoldStream();
  res.setHeader('Content-Type', 'text/event-stream');
  res.end(':ok\n\n');
});

app.get('/publish/:channel', async (req, res) => {
  const publisher = serveGrip.getPublisher();
  await publisher.publishHttpStream(req.params.channel, `event: m\ndata: ${req.query.data}\n\n`);
  res.end('published\n');
});

const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log('listening');
});
process.on('SIGTERM', () => server.close());
