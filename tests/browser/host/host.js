// Exposes molt.js and the site's registry to tests/browser/host.test.mjs and
// bench/js-load.mjs, which drive them with page.evaluate. The page lives in
// host/ next to a copy of the site (scripts/site): ../molt.js, ../registry/.
import * as molt from '../molt.js';

const keys = await (await fetch('../trusted-keys.json')).json();
window.molt = molt;
window.openSite = (o = {}) => molt.openRegistry({ url: '../registry/', trustedKeys: keys, ...o });
// Counts main-thread timer ticks and animation frames while `f` runs.
window.ticksDuring = async (f) => {
  let ticks = 0, frames = 0, on = true;
  const timer = setInterval(() => { ticks++; }, 5);
  const frame = () => { if (on) { frames++; requestAnimationFrame(frame); } };
  requestAnimationFrame(frame);
  try { return { value: await f(), ticks, frames }; } finally { on = false; clearInterval(timer); }
};
document.body.dataset.state = 'ready';
