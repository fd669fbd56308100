'use strict';

// mediasoup's own Node test suite (3.14.7, extracted as
// @mafalda-sfu/mediasoup-node-tests), run against remote-mediasoup: every
// mediasoup object lives on the node at MAFALDA_NODE_URL (run.sh starts one).
const runMediasoupTests = require('@mafalda-sfu/mediasoup-node-tests');

runMediasoupTests(require('../..'));
