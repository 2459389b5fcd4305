/* portal.js -- the authorities page. */
